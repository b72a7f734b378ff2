package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cofferhq/coffer/server"
	"github.com/spf13/cobra"
)

// The IAM commands: users, their access keys, groups and customer managed
// policies of a region (server/iam.go, docs/iam.md). Every call is signed
// with the caller's credentials; today only the region's root identity
// may make them.

const iamHelpTail = `

The call is signed with the credentials in AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY (the root identity's, or a user's whose policies allow
the coffer: action) and scoped to --region or AWS_REGION. Add --format json
for JSON output.`

func iamCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "iam",
		Short: "Manage the region's IAM users, access keys, groups and policies",
		Long: `Manage the region's identities, as AWS IAM does: users with up to two access
keys each, groups of users, and customer managed policies attached to users
or groups. A user's key signs Secrets Manager calls like the root key does.

Every Secrets Manager operation and every admin call (these commands
included, as coffer:CreateUser, coffer:AttachUserPolicy, ...) is authorized
by the caller's policies and the secret's resource policy, as IAM does: a
new user may do nothing until a policy allows it (docs/authorization.md).
Identities are per region: replication does not carry them yet.
docs/iam.md has the details.` + iamHelpTail,
		Example: `  coffer iam user create bob
  coffer iam key create bob
  coffer iam group create readers
  coffer iam group add-user readers bob
  coffer iam policy create read-db --document policy.json
  coffer iam policy attach read-db --group readers`,
	}
	c.AddCommand(iamUserCmd(), iamKeyCmd(), iamGroupCmd(), iamPolicyCmd())
	return c
}

// iamLeaf builds one IAM command: run gets the client flags' output
// format and does the call.
func iamLeaf(use, short, long, example string, args cobra.PositionalArgs,
	flags func(*cobra.Command), run func(cmd *cobra.Command, c *adminClient, json bool, args []string) error) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    long + iamHelpTail,
		Example: example,
		Args:    args,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			return run(cmd, c, cf.format == "json", args)
		},
	}
	cf.add(cmd)
	if flags != nil {
		flags(cmd)
	}
	return cmd
}

func iamDate(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func iamList(items []string) string { return cmp.Or(strings.Join(items, ", "), "-") }

// Users.

func iamUserCmd() *cobra.Command {
	c := &cobra.Command{Use: "user", Short: "Manage IAM users",
		Long: "Create, list, describe and delete the region's IAM users." + iamHelpTail}
	var path string
	create := iamLeaf("create NAME", "Create a user",
		`Create an IAM user. NAME has letters, digits and +=,.@_- (at most 64); "root"
is the region's root identity and cannot be a user. --path (default /) is an
IAM path like /ops/, part of the user's ARN
(arn:aws:iam::ACCOUNT:user/PATH/NAME). Give it keys with coffer iam key create.`,
		"  coffer iam user create bob --path /ops/", cobra.ExactArgs(1),
		func(cmd *cobra.Command) { cmd.Flags().StringVar(&path, "path", "/", "the user's IAM path") },
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			var u server.UserInfo
			if err := c.call(cmd.Context(), "POST", "/v1/iam/users", map[string]string{"name": args[0], "path": path}, &u, true); err != nil {
				return err
			}
			return printUser(cmd.OutOrStdout(), asJSON, &u)
		})
	lst := iamLeaf("list", "List the users",
		"List the region's IAM users by name: id, groups, attached policies and ARN.",
		"  coffer iam user list --format json", cobra.NoArgs, nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, _ []string) error {
			var out struct {
				Users []server.UserInfo `json:"users"`
			}
			if err := c.call(cmd.Context(), "GET", "/v1/iam/users", nil, &out, true); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, out.Users)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "Name\tUser ID\tGroups\tPolicies\tARN")
			for _, u := range out.Users {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.UserID, iamList(u.Groups), iamList(u.Policies), u.ARN)
			}
			return tw.Flush()
		})
	describe := iamLeaf("describe NAME", "Show a user, its groups, policies and access keys",
		"Show a user: its ARN and id, the groups it is in, the policies attached to it, and its\naccess keys (id, status, created, last used; never a secret).",
		"  coffer iam user describe bob", cobra.ExactArgs(1), nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			var u server.UserInfo
			if err := c.call(cmd.Context(), "GET", "/v1/iam/user?name="+url.QueryEscape(args[0]), nil, &u, true); err != nil {
				return err
			}
			return printUser(cmd.OutOrStdout(), asJSON, &u)
		})
	del := iamLeaf("delete NAME", "Delete a user",
		"Delete a user. As IAM does, a user that still has access keys, is in a group or has\npolicies attached is refused (DeleteConflict): delete its keys, remove it from its\ngroups and detach its policies first.",
		"  coffer iam user delete bob", cobra.ExactArgs(1), nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			return deleteCall(cmd, c, asJSON, "/v1/iam/user/delete", map[string]string{"name": args[0]}, "user "+args[0])
		})
	c.AddCommand(create, lst, describe, del)
	return c
}

func printUser(w io.Writer, asJSON bool, u *server.UserInfo) error {
	if asJSON {
		return printJSON(w, u)
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "Name\t%s\n", u.Name)
	fmt.Fprintf(tw, "User ID\t%s\n", u.UserID)
	fmt.Fprintf(tw, "ARN\t%s\n", u.ARN)
	fmt.Fprintf(tw, "Path\t%s\n", u.Path)
	fmt.Fprintf(tw, "Created\t%s\n", iamDate(u.CreatedDate))
	fmt.Fprintf(tw, "Groups\t%s\n", iamList(u.Groups))
	fmt.Fprintf(tw, "Policies\t%s\n", iamList(u.Policies))
	for _, k := range u.AccessKeys {
		fmt.Fprintf(tw, "Access key\t%s  %s  created %s  last used %s\n", k.AccessKeyID, k.Status, iamDate(k.CreatedDate), iamDate(k.LastUsedDate))
	}
	return tw.Flush()
}

func deleteCall(cmd *cobra.Command, c *adminClient, asJSON bool, path string, in any, what string) error {
	var out map[string]string
	if err := c.call(cmd.Context(), "POST", path, in, &out, true); err != nil {
		return err
	}
	if asJSON {
		return printJSON(cmd.OutOrStdout(), out)
	}
	_, err := fmt.Fprintf(cmd.OutOrStdout(), "Deleted %s.\n", what)
	return err
}

// Access keys.

func iamKeyCmd() *cobra.Command {
	c := &cobra.Command{Use: "key", Short: "Manage IAM users' access keys",
		Long: "Create, list, activate, deactivate and delete IAM users' access keys (at most two per\nuser). The region's root key is not managed here." + iamHelpTail}
	create := iamLeaf("create USER", "Create an access key for a user (the secret is shown once)",
		`Create an access key pair for USER and print it. The secret access key is shown
this once and never again: Coffer keeps it only sealed under the region's
keyring. With --format json the pair is printed in the AWS credentials JSON
shape ({"Version": 1, "AccessKeyId", "SecretAccessKey"}), which the AWS CLI's
credential_process reads.`,
		"  coffer iam key create bob\n  coffer iam key create bob --format json > bob.json", cobra.ExactArgs(1), nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			var k server.NewAccessKey
			if err := c.call(cmd.Context(), "POST", "/v1/iam/keys", map[string]string{"user": args[0]}, &k, true); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, map[string]any{"Version": 1, "AccessKeyId": k.AccessKeyID, "SecretAccessKey": k.SecretAccessKey})
			}
			fmt.Fprintf(w, "Access key for %s. The secret cannot be shown again: store it now.\n\n", k.User)
			fmt.Fprintf(w, "  AWS_ACCESS_KEY_ID=%s\n  AWS_SECRET_ACCESS_KEY=%s\n", k.AccessKeyID, k.SecretAccessKey)
			return nil
		})
	lst := iamLeaf("list USER", "List a user's access keys",
		"List a user's access keys: id, status, when created and when last used (never the\nsecret).",
		"  coffer iam key list bob", cobra.ExactArgs(1), nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			var out struct {
				AccessKeys []server.AccessKeyInfo `json:"access_keys"`
			}
			if err := c.call(cmd.Context(), "GET", "/v1/iam/keys?user="+url.QueryEscape(args[0]), nil, &out, true); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, out.AccessKeys)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "Access key ID\tStatus\tCreated\tLast used")
			for _, k := range out.AccessKeys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.AccessKeyID, k.Status, iamDate(k.CreatedDate), iamDate(k.LastUsedDate))
			}
			return tw.Flush()
		})
	var status string
	update := iamLeaf("update ID --status Active|Inactive", "Activate or deactivate an access key",
		"Set an access key's status. An Inactive key is refused as an unknown key is, on every\nnode, until it is made Active again.",
		"  coffer iam key update AKIAEXAMPLE --status Inactive", cobra.ExactArgs(1),
		func(cmd *cobra.Command) {
			cmd.Flags().StringVar(&status, "status", "", "Active or Inactive")
			cmd.MarkFlagRequired("status")
		},
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			var k server.AccessKeyInfo
			if err := c.call(cmd.Context(), "POST", "/v1/iam/key/update", map[string]string{"access_key_id": args[0], "status": status}, &k, true); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), k)
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "Access key %s of %s is %s.\n", k.AccessKeyID, k.User, k.Status)
			return err
		})
	del := iamLeaf("delete ID", "Delete an access key",
		"Delete a user's access key for good; requests signed with it are refused at once.",
		"  coffer iam key delete AKIAEXAMPLE", cobra.ExactArgs(1), nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			return deleteCall(cmd, c, asJSON, "/v1/iam/key/delete", map[string]string{"access_key_id": args[0]}, "access key "+args[0])
		})
	c.AddCommand(create, lst, update, del)
	return c
}

// Groups.

func iamGroupCmd() *cobra.Command {
	c := &cobra.Command{Use: "group", Short: "Manage IAM groups",
		Long: "Create, list, describe and delete IAM groups, and add users to them. A user gets the\npolicies attached to each of its groups." + iamHelpTail}
	var path string
	create := iamLeaf("create NAME", "Create a group",
		"Create an IAM group. NAME has letters, digits and +=,.@_- (at most 64); --path (default\n/) is part of its ARN.",
		"  coffer iam group create readers", cobra.ExactArgs(1),
		func(cmd *cobra.Command) { cmd.Flags().StringVar(&path, "path", "/", "the group's IAM path") },
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			return groupCall(cmd, c, asJSON, "POST", "/v1/iam/groups", map[string]string{"name": args[0], "path": path})
		})
	lst := iamLeaf("list", "List the groups",
		"List the region's IAM groups by name, with their members and attached policies.",
		"  coffer iam group list", cobra.NoArgs, nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, _ []string) error {
			var out struct {
				Groups []server.GroupInfo `json:"groups"`
			}
			if err := c.call(cmd.Context(), "GET", "/v1/iam/groups", nil, &out, true); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, out.Groups)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "Name\tGroup ID\tMembers\tPolicies\tARN")
			for _, g := range out.Groups {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Name, g.GroupID, iamList(g.Members), iamList(g.Policies), g.ARN)
			}
			return tw.Flush()
		})
	describe := iamLeaf("describe NAME", "Show a group, its members and policies",
		"Show a group: its ARN and id, its members and the policies attached to it.",
		"  coffer iam group describe readers", cobra.ExactArgs(1), nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			return groupCall(cmd, c, asJSON, "GET", "/v1/iam/group?name="+url.QueryEscape(args[0]), nil)
		})
	del := iamLeaf("delete NAME", "Delete a group",
		"Delete a group. A group with members or attached policies is refused (DeleteConflict).",
		"  coffer iam group delete readers", cobra.ExactArgs(1), nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			return deleteCall(cmd, c, asJSON, "/v1/iam/group/delete", map[string]string{"name": args[0]}, "group "+args[0])
		})
	add := iamLeaf("add-user GROUP USER", "Add a user to a group",
		"Add USER to GROUP (a user is in at most 10 groups). Adding a member again changes\nnothing.",
		"  coffer iam group add-user readers bob", cobra.ExactArgs(2), nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			return groupCall(cmd, c, asJSON, "POST", "/v1/iam/group/add-user", map[string]string{"group": args[0], "user": args[1]})
		})
	remove := iamLeaf("remove-user GROUP USER", "Remove a user from a group",
		"Remove USER from GROUP.",
		"  coffer iam group remove-user readers bob", cobra.ExactArgs(2), nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			return groupCall(cmd, c, asJSON, "POST", "/v1/iam/group/remove-user", map[string]string{"group": args[0], "user": args[1]})
		})
	c.AddCommand(create, lst, describe, del, add, remove)
	return c
}

func groupCall(cmd *cobra.Command, c *adminClient, asJSON bool, method, path string, in any) error {
	var g server.GroupInfo
	if err := c.call(cmd.Context(), method, path, in, &g, true); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if asJSON {
		return printJSON(w, &g)
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "Name\t%s\n", g.Name)
	fmt.Fprintf(tw, "Group ID\t%s\n", g.GroupID)
	fmt.Fprintf(tw, "ARN\t%s\n", g.ARN)
	fmt.Fprintf(tw, "Created\t%s\n", iamDate(g.CreatedDate))
	fmt.Fprintf(tw, "Members\t%s\n", iamList(g.Members))
	fmt.Fprintf(tw, "Policies\t%s\n", iamList(g.Policies))
	return tw.Flush()
}

// Policies.

// readDocument reads --document: inline JSON (starting with "{"), "-"
// for standard input, or a file name.
func readDocument(cmd *cobra.Command, doc string) (string, error) {
	switch {
	case doc == "":
		return "", errors.New("give the policy document with --document FILE, - (standard input) or inline JSON")
	case strings.HasPrefix(strings.TrimSpace(doc), "{"):
		return doc, nil
	case doc == "-":
		raw, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
		return string(raw), err
	}
	raw, err := os.ReadFile(doc)
	return string(raw), err
}

func iamPolicyCmd() *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Manage customer managed policies",
		Long: `Create, list, describe, update and delete customer managed policies, and attach them
to users and groups. A document is an IAM identity policy (JSON with a
Statement whose statements each have Effect, Action and Resource; actions
secretsmanager:*, coffer:* or *; at most 6,144 characters), checked as
authorization will read it. A change applies to the next request.` + iamHelpTail}
	var path, description, document string
	create := iamLeaf("create NAME --document FILE|-|JSON", "Create a policy",
		"Create a customer managed policy NAME (letters, digits and +=,.@_-, at most 128) with\nthe identity policy in --document: a file, - for standard input, or inline JSON.",
		`  coffer iam policy create read-db --document policy.json
  coffer iam policy create read-all --document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}'`,
		cobra.ExactArgs(1),
		func(cmd *cobra.Command) {
			cmd.Flags().StringVar(&document, "document", "", "the policy document: a file, - (standard input) or inline JSON")
			cmd.Flags().StringVar(&path, "path", "/", "the policy's IAM path")
			cmd.Flags().StringVar(&description, "description", "", "what the policy is for")
		},
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			doc, err := readDocument(cmd, document)
			if err != nil {
				return err
			}
			return policyCall(cmd, c, asJSON, "POST", "/v1/iam/policies",
				map[string]string{"name": args[0], "path": path, "description": description, "document": doc})
		})
	lst := iamLeaf("list", "List the policies",
		"List the region's customer managed policies by name, with where they are attached.",
		"  coffer iam policy list", cobra.NoArgs, nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, _ []string) error {
			var out struct {
				Policies []server.PolicyInfo `json:"policies"`
			}
			if err := c.call(cmd.Context(), "GET", "/v1/iam/policies", nil, &out, true); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, out.Policies)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "Name\tPolicy ID\tUsers\tGroups\tUpdated\tARN")
			for _, p := range out.Policies {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.PolicyID, iamList(p.AttachedUsers), iamList(p.AttachedGroups), iamDate(p.UpdatedDate), p.ARN)
			}
			return tw.Flush()
		})
	describe := iamLeaf("describe NAME", "Show a policy and its document",
		"Show a policy: its ARN and id, its document, and the users and groups it is attached to.",
		"  coffer iam policy describe read-db", cobra.ExactArgs(1), nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			return policyCall(cmd, c, asJSON, "GET", "/v1/iam/policy?name="+url.QueryEscape(args[0]), nil)
		})
	var newDocument string
	update := iamLeaf("update NAME --document FILE|-|JSON", "Replace a policy's document",
		"Replace a policy's document; the users and groups it is attached to get the new one.",
		"  coffer iam policy update read-db --document policy-v2.json", cobra.ExactArgs(1),
		func(cmd *cobra.Command) {
			cmd.Flags().StringVar(&newDocument, "document", "", "the new document: a file, - (standard input) or inline JSON")
		},
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			doc, err := readDocument(cmd, newDocument)
			if err != nil {
				return err
			}
			return policyCall(cmd, c, asJSON, "POST", "/v1/iam/policy/update", map[string]string{"name": args[0], "document": doc})
		})
	del := iamLeaf("delete NAME", "Delete a policy",
		"Delete a policy. A policy still attached to a user or a group is refused\n(DeleteConflict): detach it first.",
		"  coffer iam policy delete read-db", cobra.ExactArgs(1), nil,
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			return deleteCall(cmd, c, asJSON, "/v1/iam/policy/delete", map[string]string{"name": args[0]}, "policy "+args[0])
		})
	c.AddCommand(create, lst, describe, update, del, attachCmd(true), attachCmd(false))
	return c
}

func attachCmd(attach bool) *cobra.Command {
	verb, path, short := "attach", "/v1/iam/policy/attach", "Attach a policy to a user or a group"
	long := "Attach policy NAME to --user or --group (at most 10 policies each). Attaching it again\nchanges nothing."
	if !attach {
		verb, path, short = "detach", "/v1/iam/policy/detach", "Detach a policy from a user or a group"
		long = "Detach policy NAME from --user or --group."
	}
	var user, group string
	return iamLeaf(verb+" NAME --user USER | --group GROUP", short, long,
		"  coffer iam policy "+verb+" read-db --group readers\n  coffer iam policy "+verb+" read-db --user bob", cobra.ExactArgs(1),
		func(cmd *cobra.Command) {
			cmd.Flags().StringVar(&user, "user", "", "the user")
			cmd.Flags().StringVar(&group, "group", "", "the group")
			cmd.MarkFlagsOneRequired("user", "group")
			cmd.MarkFlagsMutuallyExclusive("user", "group")
		},
		func(cmd *cobra.Command, c *adminClient, asJSON bool, args []string) error {
			return policyCall(cmd, c, asJSON, "POST", path, map[string]string{"policy": args[0], "user": user, "group": group})
		})
}

func policyCall(cmd *cobra.Command, c *adminClient, asJSON bool, method, path string, in any) error {
	var p server.PolicyInfo
	if err := c.call(cmd.Context(), method, path, in, &p, true); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if asJSON {
		return printJSON(w, &p)
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "Name\t%s\n", p.Name)
	fmt.Fprintf(tw, "Policy ID\t%s\n", p.PolicyID)
	fmt.Fprintf(tw, "ARN\t%s\n", p.ARN)
	fmt.Fprintf(tw, "Description\t%s\n", cmp.Or(p.Description, "-"))
	fmt.Fprintf(tw, "Created\t%s\n", iamDate(p.CreatedDate))
	fmt.Fprintf(tw, "Updated\t%s\n", iamDate(p.UpdatedDate))
	fmt.Fprintf(tw, "Users\t%s\n", iamList(p.AttachedUsers))
	fmt.Fprintf(tw, "Groups\t%s\n", iamList(p.AttachedGroups))
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "Document:\n%s\n", p.Document)
	return err
}
