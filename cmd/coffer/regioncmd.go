package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cofferhq/coffer/region"

	"github.com/cofferhq/coffer/server"

	"github.com/cofferhq/coffer/replication"
	"github.com/spf13/cobra"
)

// The region commands: what a server knows of every region through the
// WAN pool. Calls are signed with the root identity's or an allowed user's credentials.

func regionCmd() *cobra.Command {
	g := &cobra.Command{
		Use:   "region",
		Short: "Regions as the WAN pool knows them, and replication between them",
		Long: `Regions find each other through the WAN pool: every server of every region
started with --wan-gossip-addr and --wan-join. These commands ask one server
what it knows. They are signed with the root identity's or an allowed user's credentials
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and scoped to --region or
AWS_REGION.`,
	}
	g.AddCommand(regionListCmd(), regionStatusCmd(), regionPromoteCmd(), regionDemoteCmd(), regionConflictsCmd())
	return g
}

func regionStatusCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show replication to and from the region: lag in changes and seconds, and the RPO",
		Long: `Show, for the region the call is scoped to, every replica region it ships to
and every primary region it receives from.

For a replica region: the index of this region's log up to which it has
applied every replicated change, when it last acknowledged, how many
replicated secrets changed since (PENDING, the lag in changes), and LAG, the
time since the replica region was last known to hold everything: while
changes wait, losing this region now would lose at most the changes of that
time (the RPO); 0 when nothing waits. A replica region that cannot be
reached shows why and since when; changes wait and are shipped when it can.

The figures are read linearizably, on any server of the region. The call is signed with the root identity's or an allowed user's credentials
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and scoped to --region or
AWS_REGION.`,
		Example: `  coffer region status --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1
  coffer region status --format json`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var out server.ReplicationStatusOut
			if err := c.call(cmd.Context(), "GET", "/v1/replication/status", nil, &out, true); err != nil {
				return err
			}
			return printReplicationStatus(cmd.OutOrStdout(), cf.format, out)
		},
	}
	cf.add(cmd)
	return cmd
}

func printReplicationStatus(w io.Writer, format string, out server.ReplicationStatusOut) error {
	if format == "json" {
		return printJSON(w, out)
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "Region %s\n\n", out.Region)
	if len(out.Replicas) == 0 {
		fmt.Fprintln(tw, "Replicates to no region.")
	} else {
		fmt.Fprintln(tw, "REPLICA REGION\tACKED INDEX\tLAST ACK\tPENDING\tLAG (RPO)\tERROR")
		for _, r := range out.Replicas {
			last := "never"
			if !r.LastAck.IsZero() {
				last = r.LastAck.Format(time.RFC3339)
			}
			errText := "-"
			if r.Error != "" {
				errText = r.Error + " (since " + r.ErrorSince.Format(time.RFC3339) + ")"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\n", r.Region, r.AckedIndex, last, r.Pending,
				(time.Duration(r.LagSeconds * float64(time.Second))).Round(time.Millisecond), errText)
		}
	}
	if len(out.Sources) > 0 {
		fmt.Fprintln(tw, "\nPRIMARY REGION\tAPPLIED INDEX\tLAST APPLIED")
		for _, s := range out.Sources {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", s.Region, s.AppliedIndex, s.LastApplied.Format(time.RFC3339))
		}
	}
	return tw.Flush()
}

func regionListCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every region: its leader, how many servers serve, its replication key's fingerprint",
		Long: `List every region the server knows through the WAN pool: its leader, how
many of its servers are up and how many can serve (unsealed, with a leader),
and the fingerprint of the region's replication public key (the first 16
bytes of its SHA-256), which other regions seal shipped data keys to. Compare
fingerprints out of band before trusting a region. A region whose servers
publish different keys is marked: one of them has not caught up yet, or
something is wrong.

A server started without --wan-gossip-addr knows only its own region.

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.`,
		Example: `  coffer region list --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem --region us-east-1`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var out struct {
				Regions []replication.Region `json:"regions"`
			}
			if err := c.call(cmd.Context(), "GET", "/v1/regions", nil, &out, true); err != nil {
				return err
			}
			return printRegions(cmd.OutOrStdout(), cf.format, out.Regions)
		},
	}
	cf.add(cmd)
	return cmd
}

func printRegions(w io.Writer, format string, regions []replication.Region) error {
	if format == "json" {
		if regions == nil {
			regions = []replication.Region{}
		}
		return printJSON(w, regions)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "REGION\tLEADER\tSERVING\tKEY FINGERPRINT")
	for _, r := range regions {
		leader := r.Leader
		if leader == "" {
			leader = "(none)"
		}
		fp := r.Fingerprint
		if fp == "" {
			fp = "(no key yet)"
		}
		if r.KeyMismatch {
			fp += " (servers disagree)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\n", r.Name, leader, r.Serving, r.Servers, fp)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return nil
}

// regionArg scopes a region command to its REGION argument, which must
// agree with --region when both are given.
func (f *clientFlags) regionArg(arg string) error {
	if f.region != "" && f.region != arg {
		return fmt.Errorf("the command names region %s but --region is %s", arg, f.region)
	}
	f.region = arg
	return nil
}

func regionPromoteCmd() *cobra.Command {
	var cf clientFlags
	var from string
	cmd := &cobra.Command{
		Use:   "promote REGION",
		Short: "Promote REGION's replica secrets to primaries, during a failover or a planned move",
		Long: `Promote REGION: every replica secret in it (only those of primary region
--from, when given) becomes a writable primary secret at a higher fencing
epoch, and every secret demoted there (coffer region demote) becomes writable
again, also at the next epoch: demoting and then promoting a region is how a
split brain (two regions promoted from the same epoch) is settled in its
favour. Send it to a server of REGION.

A promoted secret replicates to its old primary region and to the other
replica regions of its old primary. When the old primary region is reachable
again it learns the higher epoch, from the first shipment either way, and
turns its copy into a replica of REGION: from then on clients cannot change
it there. Writes it acknowledged that REGION never received (those of the
replication lag before the fault, and any it took while cut off after the
promotion) are not merged and not dropped: they stay as unlabeled versions,
listed by 'coffer region conflicts' in the old primary region.

Changes the old primary made that were not shipped before the promotion are
not in REGION: 'coffer region status' in the old primary showed that lag
(the RPO). In a planned move, demote the old primary first and wait until
REGION has everything (coffer region demote --wait) so there is none.

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY).`,
		Example: `  # us-east-1 is lost: make us-west-2 the primary of what it replicates
  coffer region promote us-west-2 --endpoint https://10.1.0.1:8201 --ca-file coffer-ca.pem
  # promote only the replicas of us-east-1's secrets
  coffer region promote us-west-2 --from us-east-1`,
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.regionArg(args[0]); err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			var out server.PromoteOut
			if err := c.call(cmd.Context(), "POST", "/v1/region/promote", map[string]string{"from": from}, &out, true); err != nil {
				return err
			}
			if cf.format == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Region %s promoted: %d secrets are primaries here now (index %d).\n", out.Region, out.Secrets, out.Index)
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&from, "from", "", "promote only the replicas of this primary region's secrets (default: every replica in REGION)")
	return cmd
}

func regionDemoteCmd() *cobra.Command {
	var cf clientFlags
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "demote REGION",
		Short: "Make REGION's replicated primary secrets read-only, before promoting another region (fail-back)",
		Long: `Demote REGION: every primary secret in it that has replica regions becomes
read-only to clients (a change is refused with an error that says the region
was demoted) while shipping to its replica regions goes on. This is the first
step of a planned move of the primary, such as failing back to a region
after it recovered; docs/replication.md has the whole procedure:

  1. coffer region demote OLD --wait    (OLD stops taking writes; wait for the
                                         replica regions to have everything)
  2. coffer region promote NEW          (NEW becomes the primary; OLD turns
                                         into its replica, with no conflicts)

With --wait the command returns once every replica region has applied every
change (lag 0), or fails after that long. Promoting REGION again undoes a
demotion.

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY). Send it to a server of REGION.`,
		Example: `  coffer region demote us-west-2 --wait 5m --endpoint https://10.1.0.1:8201 --ca-file coffer-ca.pem`,
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.regionArg(args[0]); err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			var out server.PromoteOut
			if err := c.call(cmd.Context(), "POST", "/v1/region/demote", map[string]string{}, &out, true); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if cf.format != "json" {
				fmt.Fprintf(w, "Region %s demoted: %d secrets are read-only here (index %d).\n", out.Region, out.Secrets, out.Index)
			}
			if wait > 0 {
				if err := waitDrained(cmd, c, wait); err != nil {
					return err
				}
			}
			if cf.format == "json" {
				return printJSON(w, out)
			}
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait this long at most for every replica region to apply every change (0: do not wait)")
	return cmd
}

// waitDrained polls the replication status until no replicated change
// waits for any replica region (the demotion itself ships nothing).
func waitDrained(cmd *cobra.Command, c *adminClient, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		var st server.ReplicationStatusOut
		if err := c.call(cmd.Context(), "GET", "/v1/replication/status", nil, &st, true); err != nil {
			return err
		}
		behind := []string{}
		for _, r := range st.Replicas {
			if r.Pending > 0 {
				msg := fmt.Sprintf("%s (%d changes pending", r.Region, r.Pending)
				if r.Error != "" {
					msg += ": " + r.Error
				}
				behind = append(behind, msg+")")
			}
		}
		if len(behind) == 0 {
			if st.Replicas != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "Every replica region has applied every change.")
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica regions still behind after %s: %s", wait, strings.Join(behind, ", "))
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func regionConflictsCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "conflicts [REGION]",
		Short: "List the versions a region kept as conflicts when another region was promoted over it",
		Long: `List the conflict versions of a region: versions it acknowledged as a
secret's primary that the region promoted over it never received. They are
kept, unlabeled, in the secret (ListSecretVersionIds with IncludeDeprecated
shows them; GetSecretValue with their VersionId reads them), never merged and
never dropped by Coffer: decide for each whether to write its value again in
the promoted region, then remove it with 'coffer region conflicts dismiss'.

Each row names the secret, the version, when it was written, the region that
wrote it as primary and at which epoch, and when the region learned of the
promotion.

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to REGION, else --region or AWS_REGION.`,
		Example: `  coffer region conflicts us-east-1 --endpoint https://10.0.0.1:8201 --ca-file coffer-ca.pem
  aws secretsmanager get-secret-value --secret-id db/main --version-id VERSION-ID`,
		Args:    cobra.MaximumNArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if err := cf.regionArg(args[0]); err != nil {
					return err
				}
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			var out struct {
				Region    string                  `json:"region"`
				Conflicts []region.ConflictStatus `json:"conflicts"`
			}
			if err := c.call(cmd.Context(), "GET", "/v1/region/conflicts", nil, &out, true); err != nil {
				return err
			}
			if cf.format == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			tw := newTable(cmd.OutOrStdout())
			if len(out.Conflicts) == 0 {
				fmt.Fprintf(tw, "Region %s holds no conflict versions.\n", out.Region)
				return tw.Flush()
			}
			fmt.Fprintln(tw, "SECRET\tVERSION ID\tWRITTEN\tWRITTEN BY\tEPOCH\tFOUND")
			for _, v := range out.Conflicts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", v.Name, v.VersionID, v.CreatedDate.Format(time.RFC3339),
					v.Region, v.Epoch, v.Found.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cf.add(cmd)
	cmd.AddCommand(regionDismissCmd())
	return cmd
}

func regionDismissCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "dismiss SECRET VERSION-ID",
		Short: "Remove a conflict version from this region once it has been dealt with",
		Long: `Remove the conflict version VERSION-ID of SECRET (a name or ARN) from the
region for good, once its value has been written again in the promoted
region or judged not needed. Only a version that 'coffer region conflicts'
lists can be dismissed; any other version is refused and nothing changes.

Each region keeps its own copy of a conflict (a replica keeps its conflicts
whatever its primary ships), so dismiss it in every region that lists it.

The call is signed with the root identity's or an allowed user's credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) and scoped to --region or AWS_REGION.`,
		Example: `  coffer region conflicts --region us-east-1                       # list them
  aws secretsmanager get-secret-value --secret-id db/main --version-id VERSION-ID
  coffer region conflicts dismiss db/main VERSION-ID --region us-east-1`,
		Args:    cobra.ExactArgs(2),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var out server.DismissOut
			if err := c.call(cmd.Context(), "POST", "/v1/region/conflicts/dismiss",
				map[string]string{"secret_id": args[0], "version_id": args[1]}, &out, true); err != nil {
				return err
			}
			if cf.format == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Dismissed conflict version %s of %s in region %s (index %d).\n", out.VersionID, out.Name, out.Region, out.Index)
			return nil
		},
	}
	cf.add(cmd)
	return cmd
}
