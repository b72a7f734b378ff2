package server_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/server/servertest"
)

// Conformance of the metadata, label, tag, policy, password and batch
// operations through the AWS SDK for Go v2 against a 3-node cluster: one
// test (one cluster) per operation, a subtest per documented case. Calls
// go round-robin to every node.

func newOpsEnv(t *testing.T, opts ...servertest.Options) (*servertest.Cluster, *apiNodes) {
	c := servertest.New(t, 3, opts...)
	return c, newAPINodes(c)
}

// mkSecret creates a secret; value "" creates it without a value.
func mkSecret(t *testing.T, a *apiNodes, name, value string) *secretsmanager.CreateSecretOutput {
	t.Helper()
	in := &secretsmanager.CreateSecretInput{Name: aws.String(name)}
	if value != "" {
		in.SecretString = aws.String(value)
		in.ClientRequestToken = aws.String(versionToken(name, "v1"))
	}
	out, err := a.any().CreateSecret(ctxT(t), in)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return out
}

// scheduleDeletion schedules a secret for deletion with the default window.
func scheduleDeletion(t *testing.T, a *apiNodes, name string) {
	t.Helper()
	if _, err := a.any().DeleteSecret(ctxT(t), &secretsmanager.DeleteSecretInput{SecretId: aws.String(name)}); err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
}

func describeOn(t *testing.T, a *apiNodes, id string) *secretsmanager.DescribeSecretOutput {
	t.Helper()
	out, err := a.any().DescribeSecret(ctxT(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatalf("describe %s: %v", id, err)
	}
	return out
}

func valueOf(t *testing.T, a *apiNodes, in *secretsmanager.GetSecretValueInput) *secretsmanager.GetSecretValueOutput {
	t.Helper()
	out, err := a.any().GetSecretValue(ctxT(t), in)
	if err != nil {
		t.Fatalf("get %s: %v", aws.ToString(in.SecretId), err)
	}
	return out
}

func wantStages(t *testing.T, a *apiNodes, id string, want map[string][]string) {
	t.Helper()
	if got := describeOn(t, a, id).VersionIdsToStages; !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("VersionIdsToStages of %s = %v, want %v", id, got, want)
	}
}

// partialARN is an ARN without its 6-character suffix.
func partialARN(arn string) string { return arn[:len(arn)-7] }

func TestAPI_UpdateSecret(t *testing.T) {
	c, a := newOpsEnv(t)
	if code, typ, msg := keyCall(t, c.Nodes[0].Endpoint, "/v1/keys", map[string]string{"alias": "alias/payments"}, nil); code != 200 {
		t.Fatalf("create key: %d %s %s", code, typ, msg)
	}
	ctx := ctxT(t)
	upd := func(t *testing.T, in *secretsmanager.UpdateSecretInput) *secretsmanager.UpdateSecretOutput {
		t.Helper()
		out, err := a.any().UpdateSecret(ctx, in)
		if err != nil {
			t.Fatalf("update %s: %v", aws.ToString(in.SecretId), err)
		}
		return out
	}

	t.Run("metadata only creates no version", func(t *testing.T) {
		created := mkSecret(t, a, "upd-meta", "v")
		before := describeOn(t, a, "upd-meta")
		time.Sleep(5 * time.Millisecond) // LastChangedDate has millisecond precision
		// The SDK fills ClientRequestToken even here; without a value it is ignored.
		out := upd(t, &secretsmanager.UpdateSecretInput{SecretId: aws.String("upd-meta"), Description: aws.String("the db"),
			KmsKeyId: aws.String("alias/payments"), Type: aws.String("partner-x")})
		if aws.ToString(out.ARN) != aws.ToString(created.ARN) || aws.ToString(out.Name) != "upd-meta" || out.VersionId != nil {
			t.Fatalf("answer %s %s version %v", aws.ToString(out.ARN), aws.ToString(out.Name), out.VersionId)
		}
		d := describeOn(t, a, "upd-meta")
		if aws.ToString(d.Description) != "the db" || aws.ToString(d.KmsKeyId) != "alias/payments" || aws.ToString(d.Type) != "partner-x" {
			t.Fatalf("describe: %q %q %q", aws.ToString(d.Description), aws.ToString(d.KmsKeyId), aws.ToString(d.Type))
		}
		if !d.LastChangedDate.After(*before.LastChangedDate) {
			t.Fatalf("LastChangedDate %v did not move from %v", d.LastChangedDate, before.LastChangedDate)
		}
		wantStages(t, a, "upd-meta", map[string][]string{versionToken("upd-meta", "v1"): {"AWSCURRENT"}})
		// An empty description removes it; the default key ("") hides KmsKeyId.
		upd(t, &secretsmanager.UpdateSecretInput{SecretId: created.ARN, Description: aws.String(""), KmsKeyId: aws.String("")})
		d = describeOn(t, a, "upd-meta")
		if d.Description != nil || d.KmsKeyId != nil || aws.ToString(d.Type) != "partner-x" {
			t.Fatalf("after clearing: %v %v %v", d.Description, d.KmsKeyId, d.Type)
		}
	})

	t.Run("a value makes a new AWSCURRENT version", func(t *testing.T) {
		mkSecret(t, a, "upd-value", "one")
		v1, v2 := versionToken("upd-value", "v1"), versionToken("upd-value", "v2")
		out := upd(t, &secretsmanager.UpdateSecretInput{SecretId: aws.String("upd-value"), ClientRequestToken: aws.String(v2),
			SecretString: aws.String("two"), Description: aws.String("with value")})
		if aws.ToString(out.VersionId) != v2 {
			t.Fatalf("VersionId %s, want %s", aws.ToString(out.VersionId), v2)
		}
		wantStages(t, a, "upd-value", map[string][]string{v1: {"AWSPREVIOUS"}, v2: {"AWSCURRENT"}})
		if g := valueOf(t, a, &secretsmanager.GetSecretValueInput{SecretId: aws.String("upd-value")}); aws.ToString(g.SecretString) != "two" {
			t.Fatalf("value %q", aws.ToString(g.SecretString))
		}
		if d := describeOn(t, a, "upd-value"); aws.ToString(d.Description) != "with value" {
			t.Fatalf("description %q", aws.ToString(d.Description))
		}
		// The same token and value again: success, same version, nothing new.
		out = upd(t, &secretsmanager.UpdateSecretInput{SecretId: aws.String("upd-value"), ClientRequestToken: aws.String(v2), SecretString: aws.String("two")})
		if aws.ToString(out.VersionId) != v2 {
			t.Fatalf("idempotent retry answered VersionId %s", aws.ToString(out.VersionId))
		}
		wantStages(t, a, "upd-value", map[string][]string{v1: {"AWSPREVIOUS"}, v2: {"AWSCURRENT"}})
		// The same token with another value.
		_, err := a.any().UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("upd-value"), ClientRequestToken: aws.String(v2), SecretString: aws.String("three")})
		arn := aws.ToString(describeOn(t, a, "upd-value").ARN)
		wantAPIError(t, "token reuse", err, apierr.ResourceExists,
			"You can't use ClientRequestToken "+v2+" because that value is already in use for a version of secret "+arn+".")
		// A binary value, by partial ARN.
		v3 := versionToken("upd-value", "v3")
		upd(t, &secretsmanager.UpdateSecretInput{SecretId: aws.String(partialARN(arn)), ClientRequestToken: aws.String(v3), SecretBinary: []byte{0, 1, 2}})
		g := valueOf(t, a, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
		if aws.ToString(g.VersionId) != v3 || string(g.SecretBinary) != "\x00\x01\x02" {
			t.Fatalf("binary update read back %s %x", aws.ToString(g.VersionId), g.SecretBinary)
		}
	})

	t.Run("the first value of a secret created without one", func(t *testing.T) {
		mkSecret(t, a, "upd-first", "")
		v1 := versionToken("upd-first", "v1")
		upd(t, &secretsmanager.UpdateSecretInput{SecretId: aws.String("upd-first"), ClientRequestToken: aws.String(v1), SecretString: aws.String("x")})
		wantStages(t, a, "upd-first", map[string][]string{v1: {"AWSCURRENT"}})
	})

	t.Run("errors", func(t *testing.T) {
		mkSecret(t, a, "upd-err", "v")
		mkSecret(t, a, "upd-deleted", "v")
		scheduleDeletion(t, a, "upd-deleted")
		for _, tc := range []struct {
			name      string
			in        *secretsmanager.UpdateSecretInput
			code, msg string
		}{
			{"both values", &secretsmanager.UpdateSecretInput{SecretId: aws.String("upd-err"), SecretString: aws.String("s"), SecretBinary: []byte{1}},
				apierr.InvalidParameter, apierr.MsgBothValues},
			{"no such secret", &secretsmanager.UpdateSecretInput{SecretId: aws.String("upd-none"), Description: aws.String("x")},
				apierr.ResourceNotFound, apierr.MsgSecretNotFound},
			{"scheduled for deletion", &secretsmanager.UpdateSecretInput{SecretId: aws.String("upd-deleted"), Description: aws.String("x")},
				apierr.InvalidRequest, apierr.MsgMarkedForDeletion},
			{"scheduled for deletion, with a value", &secretsmanager.UpdateSecretInput{SecretId: aws.String("upd-deleted"), SecretString: aws.String("x")},
				apierr.InvalidRequest, apierr.MsgMarkedForDeletion},
			{"description too long", &secretsmanager.UpdateSecretInput{SecretId: aws.String("upd-err"), Description: aws.String(strings.Repeat("d", 2049))},
				apierr.Validation, "1 validation error detected: Value '" + strings.Repeat("d", 64) + "...' at 'description' failed to satisfy constraint: Member must have length less than or equal to 2048"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := a.any().UpdateSecret(ctx, tc.in)
				wantAPIError(t, tc.name, err, tc.code, tc.msg)
			})
		}
		if d := describeOn(t, a, "upd-err"); d.Description != nil || len(d.VersionIdsToStages) != 1 {
			t.Fatalf("a refused update changed the secret: %v %v", d.Description, d.VersionIdsToStages)
		}
	})
}

func TestAPI_UpdateSecretVersionStage(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	move := func(id, label, remove, to string) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
		in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(id), VersionStage: aws.String(label)}
		if remove != "" {
			in.RemoveFromVersionId = aws.String(remove)
		}
		if to != "" {
			in.MoveToVersionId = aws.String(to)
		}
		return a.any().UpdateSecretVersionStage(ctx, in)
	}
	put := func(t *testing.T, id, token, value string, stages ...string) {
		t.Helper()
		_, err := a.any().PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(id),
			ClientRequestToken: aws.String(token), SecretString: aws.String(value), VersionStages: stages})
		if err != nil {
			t.Fatalf("put %s: %v", token, err)
		}
	}

	t.Run("manual rotation (spec §3.4 C)", func(t *testing.T) {
		const s = "uvs-rotate"
		created := mkSecret(t, a, s, "one")
		v1, v2, v3 := versionToken(s, "v1"), versionToken(s, "v2"), versionToken(s, "v3")
		put(t, s, v2, "two", "AWSPENDING")
		out, err := move(s, "AWSCURRENT", v1, v2)
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.ARN) != aws.ToString(created.ARN) || aws.ToString(out.Name) != s {
			t.Fatalf("answer %s %s", aws.ToString(out.ARN), aws.ToString(out.Name))
		}
		// Labels keep the order they were attached in ("added to the
		// existing list", as AWS documents UpdateSecretVersionStage).
		wantStages(t, a, s, map[string][]string{v1: {"AWSPREVIOUS"}, v2: {"AWSPENDING", "AWSCURRENT"}})
		if g := valueOf(t, a, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s)}); aws.ToString(g.SecretString) != "two" {
			t.Fatalf("AWSCURRENT reads %q", aws.ToString(g.SecretString))
		}
		put(t, s, v3, "three")
		wantStages(t, a, s, map[string][]string{v2: {"AWSPREVIOUS"}, v3: {"AWSCURRENT"}})
		// Revert: AWSCURRENT back to v2, v3 becomes AWSPREVIOUS.
		if _, err := move(s, "AWSCURRENT", v3, v2); err != nil {
			t.Fatal(err)
		}
		wantStages(t, a, s, map[string][]string{v2: {"AWSCURRENT"}, v3: {"AWSPREVIOUS"}})
	})

	t.Run("custom labels", func(t *testing.T) {
		const s = "uvs-custom"
		mkSecret(t, a, s, "one")
		v1, v2 := versionToken(s, "v1"), versionToken(s, "v2")
		put(t, s, v2, "two", "blue")
		// Attach a label nobody holds, by ARN.
		arn := aws.ToString(describeOn(t, a, s).ARN)
		if _, err := move(arn, "green", "", v1); err != nil {
			t.Fatal(err)
		}
		wantStages(t, a, s, map[string][]string{v1: {"AWSCURRENT", "green"}, v2: {"blue"}})
		// Move a held one with RemoveFromVersionId.
		if _, err := move(s, "blue", v2, v1); err != nil {
			t.Fatal(err)
		}
		wantStages(t, a, s, map[string][]string{v1: {"AWSCURRENT", "green", "blue"}})
		// Remove one: v2 is now deprecated but readable by id.
		if _, err := move(s, "green", v1, ""); err != nil {
			t.Fatal(err)
		}
		wantStages(t, a, s, map[string][]string{v1: {"AWSCURRENT", "blue"}})
		if g := valueOf(t, a, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s), VersionId: aws.String(v2)}); aws.ToString(g.SecretString) != "two" {
			t.Fatalf("deprecated v2 reads %q", aws.ToString(g.SecretString))
		}
		// Moving a label onto the version that has it is a no-op success.
		if _, err := move(s, "blue", "", v1); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		const s = "uvs-err"
		mkSecret(t, a, s, "one")
		v1, v2 := versionToken(s, "v1"), versionToken(s, "v2")
		put(t, s, v2, "two", "AWSPENDING")
		var many []string
		for i := range 18 {
			many = append(many, "label-"+itoa2(i))
		}
		v3 := versionToken(s, "v3")
		put(t, s, v3, "three", many...) // 20 labels on the secret now
		unknown := versionToken(s, "none")
		mkSecret(t, a, "uvs-deleted", "x")
		scheduleDeletion(t, a, "uvs-deleted")
		for _, tc := range []struct {
			name                     string
			id, label, remove, moveT string
			code, msg                string
		}{
			{"neither version id", s, "x", "", "", apierr.InvalidParameter, "You must specify MoveToVersionId, RemoveFromVersionId or both."},
			{"unknown MoveToVersionId", s, "x", "", unknown, apierr.InvalidParameter, "Not a valid version: " + unknown},
			{"unknown RemoveFromVersionId", s, "AWSCURRENT", unknown, v2, apierr.InvalidParameter, "Not a valid version: " + unknown},
			{"move a held label without RemoveFromVersionId", s, "AWSCURRENT", "", v2, apierr.InvalidParameter,
				"The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently attached to version " + v1 + ", so you must explicitly reference that version in RemoveFromVersionId."},
			{"RemoveFromVersionId does not hold the label", s, "AWSCURRENT", v2, v2, apierr.InvalidParameter,
				"The staging label AWSCURRENT is not attached to version " + v2 + ", so it can't be removed from it."},
			{"AWSCURRENT removed without a target", s, "AWSCURRENT", v1, "", apierr.InvalidParameter,
				"You can't remove the staging label AWSCURRENT from a version without moving it to another: specify MoveToVersionId."},
			{"a 21st label", s, "one-too-many", "", v1, apierr.LimitExceeded,
				"A secret can have at most 20 staging labels across its versions; this request would attach 21."},
			{"no such secret", "uvs-none", "x", "", v1, apierr.ResourceNotFound, apierr.MsgSecretNotFound},
			{"scheduled for deletion", "uvs-deleted", "x", "", versionToken("uvs-deleted", "v1"), apierr.InvalidRequest, apierr.MsgMarkedForDeletion},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := move(tc.id, tc.label, tc.remove, tc.moveT)
				wantAPIError(t, tc.name, err, tc.code, tc.msg)
			})
		}
		stages := map[string][]string{v1: {"AWSCURRENT"}, v2: {"AWSPENDING"}, v3: slices.Sorted(slices.Values(many))}
		wantStages(t, a, s, stages)
	})
}

func itoa2(i int) string { return string(rune('a'+i/26)) + string(rune('a'+i%26)) }

func TestAPI_ListSecretVersionIds(t *testing.T) {
	c, a := newOpsEnv(t)
	if code, typ, msg := keyCall(t, c.Nodes[0].Endpoint, "/v1/keys", map[string]string{"alias": "alias/mine"}, nil); code != 200 {
		t.Fatalf("create key: %d %s %s", code, typ, msg)
	}
	ctx := ctxT(t)
	const s = "lv"
	created := mkSecret(t, a, s, "value-1")
	var ids []string
	ids = append(ids, versionToken(s, "v1"))
	for i := 2; i <= 5; i++ {
		id := versionToken(s, "v"+string(rune('0'+i)))
		if _, err := a.any().PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(s),
			ClientRequestToken: aws.String(id), SecretString: aws.String("value")}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// v1..v3 are deprecated now; v4 AWSPREVIOUS, v5 AWSCURRENT.
	list := func(t *testing.T, in *secretsmanager.ListSecretVersionIdsInput) []types.SecretVersionsListEntry {
		t.Helper()
		var all []types.SecretVersionsListEntry
		p := secretsmanager.NewListSecretVersionIdsPaginator(a.any(), in)
		seen := map[string]bool{}
		for pages := 0; p.HasMorePages(); pages++ {
			if pages > 10 {
				t.Fatal("the listing does not end")
			}
			page, err := p.NextPage(ctx, func(o *secretsmanager.Options) { o.BaseEndpoint = a.any().Options().BaseEndpoint })
			if err != nil {
				t.Fatalf("page %d: %v", pages+1, err)
			}
			if want := describeOn(t, a, aws.ToString(in.SecretId)); aws.ToString(page.ARN) != aws.ToString(want.ARN) || aws.ToString(page.Name) != aws.ToString(want.Name) {
				t.Fatalf("page answers %s %s", aws.ToString(page.ARN), aws.ToString(page.Name))
			}
			if tok := aws.ToString(page.NextToken); tok != "" {
				if seen[tok] {
					t.Fatal("NextToken repeated")
				}
				seen[tok] = true
			} else if page.NextToken != nil {
				t.Fatal(`NextToken ""`)
			}
			all = append(all, page.Versions...)
		}
		return all
	}
	idsOf := func(es []types.SecretVersionsListEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, aws.ToString(e.VersionId))
		}
		return out
	}

	t.Run("labelled versions in creation order", func(t *testing.T) {
		got := list(t, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(s)})
		if !slices.Equal(idsOf(got), ids[3:]) {
			t.Fatalf("listed %v, want %v", idsOf(got), ids[3:])
		}
		if !slices.Equal(got[0].VersionStages, []string{"AWSPREVIOUS"}) || !slices.Equal(got[1].VersionStages, []string{"AWSCURRENT"}) {
			t.Fatalf("stages %v %v", got[0].VersionStages, got[1].VersionStages)
		}
		for _, e := range got {
			if e.CreatedDate == nil || time.Since(*e.CreatedDate) > time.Minute || !slices.Equal(e.KmsKeyIds, []string{"DefaultEncryptionKey"}) {
				t.Fatalf("entry %s: created %v keys %v", aws.ToString(e.VersionId), e.CreatedDate, e.KmsKeyIds)
			}
		}
	})

	t.Run("IncludeDeprecated, one per page, pages on every node", func(t *testing.T) {
		got := list(t, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(s), IncludeDeprecated: aws.Bool(true), MaxResults: aws.Int32(1)})
		if !slices.Equal(idsOf(got), ids) {
			t.Fatalf("listed %v, want %v", idsOf(got), ids)
		}
		for _, e := range got[:3] {
			if e.VersionStages != nil {
				t.Fatalf("deprecated %s lists stages %v", aws.ToString(e.VersionId), e.VersionStages)
			}
		}
		got = list(t, &secretsmanager.ListSecretVersionIdsInput{SecretId: created.ARN, IncludeDeprecated: aws.Bool(true), MaxResults: aws.Int32(2)})
		if !slices.Equal(idsOf(got), ids) {
			t.Fatalf("pages of 2 listed %v", idsOf(got))
		}
	})

	t.Run("KmsKeyIds names the secret's key", func(t *testing.T) {
		mkSecret(t, a, "lv-kms", "x")
		if _, err := a.any().UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("lv-kms"), KmsKeyId: aws.String("alias/mine")}); err != nil {
			t.Fatal(err)
		}
		got := list(t, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("lv-kms")})
		if len(got) != 1 || !slices.Equal(got[0].KmsKeyIds, []string{"alias/mine"}) {
			t.Fatalf("KmsKeyIds %v", got)
		}
		// A secret without versions lists none.
		mkSecret(t, a, "lv-empty", "")
		out, err := a.any().ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("lv-empty")})
		if err != nil || len(out.Versions) != 0 || out.NextToken != nil {
			t.Fatalf("versions of a secret without a value: %v %v", out, err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		first, err := a.any().ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(s), MaxResults: aws.Int32(1)})
		if err != nil || first.NextToken == nil {
			t.Fatalf("first page: %v %v", first, err)
		}
		mkSecret(t, a, "lv-other", "x")
		mkSecret(t, a, "lv-deleted", "x")
		scheduleDeletion(t, a, "lv-deleted")
		for _, tc := range []struct {
			name      string
			in        *secretsmanager.ListSecretVersionIdsInput
			code, msg string
		}{
			{"token of another secret", &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("lv-other"), NextToken: first.NextToken}, apierr.InvalidNextToken, ""},
			{"token for other options", &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(s), NextToken: first.NextToken, IncludeDeprecated: aws.Bool(true)}, apierr.InvalidNextToken, ""},
			{"forged token", &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(s), NextToken: aws.String("MTIzAXgBZmFsc2U.AAAAAAAAAAAAAAAAAAAAAA")}, apierr.InvalidNextToken, ""},
			{"no such secret", &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("lv-none")}, apierr.ResourceNotFound, apierr.MsgSecretNotFound},
			{"scheduled for deletion", &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("lv-deleted")}, apierr.InvalidRequest, apierr.MsgMarkedForDeletion},
			{"MaxResults 101", &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(s), MaxResults: aws.Int32(101)}, apierr.Validation,
				"1 validation error detected: Value '101' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 100"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := a.any().ListSecretVersionIds(ctx, tc.in)
				wantAPIError(t, tc.name, err, tc.code, tc.msg)
			})
		}
	})
}

func tagsOf(t *testing.T, a *apiNodes, id string) []types.Tag {
	t.Helper()
	return describeOn(t, a, id).Tags
}

func tagString(tags []types.Tag) string {
	var b strings.Builder
	for _, tg := range tags {
		b.WriteString(aws.ToString(tg.Key) + "=" + aws.ToString(tg.Value) + ";")
	}
	return b.String()
}

func TestAPI_TagResource(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }

	t.Run("add and overwrite", func(t *testing.T) {
		created := mkSecret(t, a, "tag-a", "v")
		before := describeOn(t, a, "tag-a")
		if before.Tags != nil {
			t.Fatalf("new secret has Tags %v", before.Tags)
		}
		time.Sleep(5 * time.Millisecond)
		if _, err := a.any().TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("tag-a"),
			Tags: []types.Tag{tag("team", "payments"), tag("env", "prod")}}); err != nil {
			t.Fatal(err)
		}
		d := describeOn(t, a, "tag-a")
		if got := tagString(d.Tags); got != "team=payments;env=prod;" {
			t.Fatalf("tags %s", got)
		}
		if !d.LastChangedDate.After(*before.LastChangedDate) {
			t.Fatal("LastChangedDate did not move")
		}
		// Same key: value replaced in place; new keys appended. By ARN.
		if _, err := a.any().TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: created.ARN,
			Tags: []types.Tag{tag("cost", ""), tag("team", "billing")}}); err != nil {
			t.Fatal(err)
		}
		if got := tagString(tagsOf(t, a, "tag-a")); got != "team=billing;env=prod;cost=;" {
			t.Fatalf("tags %s", got)
		}
		// ListSecrets shows them too.
		l, err := a.any().ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range l.SecretList {
			if aws.ToString(e.Name) == "tag-a" && tagString(e.Tags) != "team=billing;env=prod;cost=;" {
				t.Fatalf("ListSecrets tags %s", tagString(e.Tags))
			}
		}
	})

	t.Run("50 tags at most", func(t *testing.T) {
		mkSecret(t, a, "tag-50", "v")
		var tags []types.Tag
		for i := range 50 {
			tags = append(tags, tag("k"+itoa2(i), "v"))
		}
		if _, err := a.any().TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("tag-50"), Tags: tags[:30]}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.any().TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("tag-50"), Tags: tags[30:]}); err != nil {
			t.Fatalf("tags 31-50: %v", err)
		}
		_, err := a.any().TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("tag-50"), Tags: []types.Tag{tag("one-more", "")}})
		wantAPIError(t, "51st tag", err, apierr.InvalidParameter, "A secret can have at most 50 tags; this request would leave it with 51.")
		// Overwriting at 50 is fine.
		if _, err := a.any().TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("tag-50"), Tags: []types.Tag{tag("kaa", "new")}}); err != nil {
			t.Fatal(err)
		}
		if got := tagsOf(t, a, "tag-50"); len(got) != 50 || aws.ToString(got[0].Value) != "new" {
			t.Fatalf("%d tags, first %s", len(got), tagString(got[:1]))
		}
	})

	t.Run("errors", func(t *testing.T) {
		mkSecret(t, a, "tag-err", "v")
		mkSecret(t, a, "tag-deleted", "v")
		scheduleDeletion(t, a, "tag-deleted")
		var tooMany []types.Tag
		for i := range 51 {
			tooMany = append(tooMany, tag("k"+itoa2(i), ""))
		}
		for _, tc := range []struct {
			name      string
			id        string
			tags      []types.Tag
			code, msg string
		}{
			{"aws: prefix", "tag-err", []types.Tag{tag("aws:owner", "x")}, apierr.InvalidParameter, `Tag key "aws:owner" uses the reserved prefix aws:.`},
			{"AWS: prefix in capitals", "tag-err", []types.Tag{tag("AWS:owner", "x")}, apierr.InvalidParameter, `Tag key "AWS:owner" uses the reserved prefix aws:.`},
			{"duplicate keys", "tag-err", []types.Tag{tag("a", "1"), tag("a", "2")}, apierr.InvalidParameter, `Tag key "a" appears more than once.`},
			{"51 in one request", "tag-err", tooMany, apierr.InvalidParameter, "A secret can have at most 50 tags; the request has 51."},
			{"key of 129 characters", "tag-err", []types.Tag{tag(strings.Repeat("k", 129), "")}, apierr.Validation, "tags.1.member.key"},
			{"value of 257 characters", "tag-err", []types.Tag{tag("k", strings.Repeat("v", 257))}, apierr.Validation, "tags.1.member.value"},
			{"no such secret", "tag-none", []types.Tag{tag("a", "1")}, apierr.ResourceNotFound, apierr.MsgSecretNotFound},
			{"scheduled for deletion", "tag-deleted", []types.Tag{tag("a", "1")}, apierr.InvalidRequest, apierr.MsgMarkedForDeletion},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := a.any().TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String(tc.id), Tags: tc.tags})
				if tc.code == apierr.Validation {
					wantAPIError(t, tc.name, err, tc.code, "")
					if !strings.Contains(apiMessage(err), tc.msg) {
						t.Fatalf("message %q does not name %s", apiMessage(err), tc.msg)
					}
					return
				}
				wantAPIError(t, tc.name, err, tc.code, tc.msg)
			})
		}
		if got := tagsOf(t, a, "tag-err"); got != nil {
			t.Fatalf("refused requests left tags %s", tagString(got))
		}
	})
}

func TestAPI_UntagResource(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	create := func(t *testing.T, name string) {
		t.Helper()
		_, err := a.any().CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), Tags: []types.Tag{
			{Key: aws.String("a"), Value: aws.String("1")}, {Key: aws.String("b"), Value: aws.String("2")}, {Key: aws.String("c"), Value: aws.String("3")}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	untag := func(t *testing.T, id string, keys ...string) {
		t.Helper()
		if _, err := a.any().UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String(id), TagKeys: keys}); err != nil {
			t.Fatalf("untag %v: %v", keys, err)
		}
	}

	t.Run("remove some, unknown keys ignored", func(t *testing.T) {
		create(t, "untag-a")
		untag(t, "untag-a", "b", "nope", "A")
		if got := tagString(tagsOf(t, a, "untag-a")); got != "a=1;c=3;" {
			t.Fatalf("tags %s", got)
		}
		untag(t, "untag-a", "nope") // idempotent
		if got := tagString(tagsOf(t, a, "untag-a")); got != "a=1;c=3;" {
			t.Fatalf("tags %s", got)
		}
	})

	t.Run("remove all: Tags is an empty list", func(t *testing.T) {
		create(t, "untag-all")
		untag(t, "untag-all", "a", "b", "c")
		if got := tagsOf(t, a, "untag-all"); got == nil || len(got) != 0 {
			t.Fatalf("Tags after removing every tag: %#v, want []", got)
		}
	})

	t.Run("errors", func(t *testing.T) {
		create(t, "untag-deleted")
		scheduleDeletion(t, a, "untag-deleted")
		_, err := a.any().UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String("untag-deleted"), TagKeys: []string{"a"}})
		wantAPIError(t, "scheduled", err, apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
		_, err = a.any().UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String("untag-none"), TagKeys: []string{"a"}})
		wantAPIError(t, "no such secret", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		_, err = a.any().UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String("untag-a"), TagKeys: []string{strings.Repeat("k", 129)}})
		wantAPIError(t, "long key", err, apierr.Validation, "")
	})
}

const (
	policyAccount = `{"Version":"2012-10-17","Statement":[{"Sid":"acct","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`
	policyPublic  = `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}}`
	policyNarrow  = `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-abc123"}}}}`
	policyLockout = `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"000000000000"},"Action":"secretsmanager:*","Resource":"*"}]}`
	policyNoPrinc = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`
)

func getPolicy(t *testing.T, a *apiNodes, id string) *secretsmanager.GetResourcePolicyOutput {
	t.Helper()
	out, err := a.any().GetResourcePolicy(ctxT(t), &secretsmanager.GetResourcePolicyInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatalf("get policy of %s: %v", id, err)
	}
	return out
}

func TestAPI_PutResourcePolicy(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	put := func(id, doc string, block *bool) (*secretsmanager.PutResourcePolicyOutput, error) {
		return a.any().PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String(id),
			ResourcePolicy: aws.String(doc), BlockPublicPolicy: block})
	}

	t.Run("stored byte for byte, replaced", func(t *testing.T) {
		created := mkSecret(t, a, "pol", "v")
		spaced := "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [ {\"Effect\": \"Deny\", \"Principal\": {\"AWS\": \"111111111111\"}, \"Action\": \"secretsmanager:*\"} ]\n}\n"
		out, err := put("pol", spaced, nil)
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.ARN) != aws.ToString(created.ARN) || aws.ToString(out.Name) != "pol" {
			t.Fatalf("answer %s %s", aws.ToString(out.ARN), aws.ToString(out.Name))
		}
		if got := aws.ToString(getPolicy(t, a, "pol").ResourcePolicy); got != spaced {
			t.Fatalf("stored %q, want %q", got, spaced)
		}
		if _, err := put(aws.ToString(created.ARN), policyAccount, aws.Bool(true)); err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(getPolicy(t, a, "pol").ResourcePolicy); got != policyAccount {
			t.Fatalf("after replace %q", got)
		}
	})

	t.Run("BlockPublicPolicy", func(t *testing.T) {
		mkSecret(t, a, "pol-public", "v")
		_, err := put("pol-public", policyPublic, aws.Bool(true))
		wantAPIError(t, "public policy blocked", err, apierr.PublicPolicy, apierr.MsgPublicPolicy)
		if got := getPolicy(t, a, "pol-public").ResourcePolicy; got != nil {
			t.Fatalf("a blocked policy was stored: %q", *got)
		}
		// A "*" principal narrowed to an organization is not public.
		if _, err := put("pol-public", policyNarrow, aws.Bool(true)); err != nil {
			t.Fatalf("narrowed policy: %v", err)
		}
		// Without BlockPublicPolicy a public policy is accepted.
		if _, err := put("pol-public", policyPublic, aws.Bool(false)); err != nil {
			t.Fatal(err)
		}
		if _, err := put("pol-public", policyPublic, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		mkSecret(t, a, "pol-err", "v")
		mkSecret(t, a, "pol-deleted", "v")
		scheduleDeletion(t, a, "pol-deleted")
		for _, tc := range []struct {
			name, id, doc string
			code, msg     string
		}{
			{"not JSON", "pol-err", `{"Statement": [`, apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy},
			{"a JSON list", "pol-err", `[]`, apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy},
			{"no Principal", "pol-err", policyNoPrinc, apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy},
			{"empty Statement", "pol-err", `{"Version":"2012-10-17","Statement":[]}`, apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy},
			{"another service's action", "pol-err", `{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}}`, apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy},
			{"bad Version", "pol-err", `{"Version":"2024-01-01","Statement":{"Effect":"Allow","Principal":"*","Action":"*"}}`, apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy},
			{"20,481 characters", "pol-err", policyAccount + strings.Repeat(" ", 20481-len(policyAccount)), apierr.Validation, ""},
			{"no such secret", "pol-none", policyAccount, apierr.ResourceNotFound, apierr.MsgSecretNotFound},
			{"scheduled for deletion", "pol-deleted", policyAccount, apierr.InvalidRequest, apierr.MsgMarkedForDeletion},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := put(tc.id, tc.doc, nil)
				wantAPIError(t, tc.name, err, tc.code, tc.msg)
			})
		}
		if got := getPolicy(t, a, "pol-err").ResourcePolicy; got != nil {
			t.Fatalf("refused policies left %q", *got)
		}
		// Exactly 20,480 characters is accepted.
		if _, err := put("pol-err", policyAccount+strings.Repeat(" ", 20480-len(policyAccount)), nil); err != nil {
			t.Fatalf("policy of 20,480 characters: %v", err)
		}
	})
}

func TestAPI_GetResourcePolicy(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	created := mkSecret(t, a, "gp", "v")

	t.Run("no policy: ResourcePolicy omitted", func(t *testing.T) {
		out := getPolicy(t, a, "gp")
		if out.ResourcePolicy != nil || aws.ToString(out.ARN) != aws.ToString(created.ARN) || aws.ToString(out.Name) != "gp" {
			t.Fatalf("answer %v %s %s", out.ResourcePolicy, aws.ToString(out.ARN), aws.ToString(out.Name))
		}
	})
	t.Run("with a policy, by every form of id", func(t *testing.T) {
		if _, err := a.any().PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String("gp"), ResourcePolicy: aws.String(policyAccount)}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"gp", aws.ToString(created.ARN), partialARN(aws.ToString(created.ARN))} {
			if got := aws.ToString(getPolicy(t, a, id).ResourcePolicy); got != policyAccount {
				t.Fatalf("by %s: %q", id, got)
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, err := a.any().GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: aws.String("gp-none")})
		wantAPIError(t, "no such secret", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		scheduleDeletion(t, a, "gp")
		_, err = a.any().GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: aws.String("gp")})
		wantAPIError(t, "scheduled for deletion", err, apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
		// Restored, the policy is back.
		if _, err := a.any().RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String("gp")}); err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(getPolicy(t, a, "gp").ResourcePolicy); got != policyAccount {
			t.Fatalf("after restore: %q", got)
		}
	})
}

func TestAPI_DeleteResourcePolicy(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	created := mkSecret(t, a, "dp", "v")
	if _, err := a.any().PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String("dp"), ResourcePolicy: aws.String(policyAccount)}); err != nil {
		t.Fatal(err)
	}
	t.Run("removes the policy, then is a no-op", func(t *testing.T) {
		for range 2 {
			out, err := a.any().DeleteResourcePolicy(ctx, &secretsmanager.DeleteResourcePolicyInput{SecretId: aws.String("dp")})
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(out.ARN) != aws.ToString(created.ARN) || aws.ToString(out.Name) != "dp" {
				t.Fatalf("answer %s %s", aws.ToString(out.ARN), aws.ToString(out.Name))
			}
			if got := getPolicy(t, a, "dp").ResourcePolicy; got != nil {
				t.Fatalf("policy still there: %q", *got)
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, err := a.any().DeleteResourcePolicy(ctx, &secretsmanager.DeleteResourcePolicyInput{SecretId: aws.String("dp-none")})
		wantAPIError(t, "no such secret", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		scheduleDeletion(t, a, "dp")
		_, err = a.any().DeleteResourcePolicy(ctx, &secretsmanager.DeleteResourcePolicyInput{SecretId: aws.String("dp")})
		wantAPIError(t, "scheduled for deletion", err, apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
	})
}

func TestAPI_ValidateResourcePolicy(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	created := mkSecret(t, a, "vp", "v")
	mkSecret(t, a, "vp-deleted", "v")
	scheduleDeletion(t, a, "vp-deleted")
	validate := func(id *string, doc string) (*secretsmanager.ValidateResourcePolicyOutput, error) {
		return a.any().ValidateResourcePolicy(ctx, &secretsmanager.ValidateResourcePolicyInput{SecretId: id, ResourcePolicy: aws.String(doc)})
	}
	checks := func(out *secretsmanager.ValidateResourcePolicyOutput) []string {
		var names []string
		for _, e := range out.ValidationErrors {
			if aws.ToString(e.ErrorMessage) == "" {
				names = append(names, "(no message)")
			}
			names = append(names, aws.ToString(e.CheckName))
		}
		return names
	}
	for _, tc := range []struct {
		name   string
		id     *string
		doc    string
		passed bool
		checks []string
	}{
		{"a valid policy, without SecretId", nil, policyAccount, true, nil},
		{"a valid policy, with SecretId", aws.String("vp"), policyAccount, true, nil},
		{"narrowed star, by ARN", created.ARN, policyNarrow, true, nil},
		{"broad access", aws.String("vp"), policyPublic, false, []string{"BROAD_ACCESS"}},
		{"no Principal", nil, policyNoPrinc, false, []string{"SYNTAX"}},
		{"two structure problems", nil, `{"Statement":{"Effect":"Maybe","Principal":"*"}}`, false, []string{"SYNTAX", "SYNTAX"}},
		{"locks the caller out", aws.String("vp"), policyLockout, false, []string{"LOCKOUT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := validate(tc.id, tc.doc)
			if err != nil {
				t.Fatal(err)
			}
			got := checks(out)
			if out.PolicyValidationPassed != tc.passed || !slices.Equal(got, tc.checks) || out.ValidationErrors == nil {
				t.Fatalf("passed %v, checks %v (%#v); want %v %v", out.PolicyValidationPassed, got, out.ValidationErrors, tc.passed, tc.checks)
			}
		})
	}
	if got := getPolicy(t, a, "vp").ResourcePolicy; got != nil {
		t.Fatalf("ValidateResourcePolicy stored %q", *got)
	}
	t.Run("errors", func(t *testing.T) {
		_, err := validate(nil, `not json`)
		wantAPIError(t, "not JSON", err, apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy)
		_, err = validate(aws.String("vp-none"), policyAccount)
		wantAPIError(t, "no such secret", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		_, err = validate(aws.String("vp-deleted"), policyAccount)
		wantAPIError(t, "scheduled for deletion", err, apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
	})
}

func TestAPI_GetRandomPassword(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	const (
		lower = "abcdefghijklmnopqrstuvwxyz"
		upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		digit = "0123456789"
		punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
	)
	gen := func(t *testing.T, in *secretsmanager.GetRandomPasswordInput) string {
		t.Helper()
		out, err := a.any().GetRandomPassword(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.RandomPassword)
	}
	onlyFrom := func(t *testing.T, pw, allowed string) {
		t.Helper()
		if i := strings.IndexFunc(pw, func(r rune) bool { return !strings.ContainsRune(allowed, r) }); i >= 0 {
			t.Fatalf("password has %q, not in %q", pw[i], allowed)
		}
	}
	hasEach := func(t *testing.T, pw string, classes ...string) {
		t.Helper()
		for _, c := range classes {
			if !strings.ContainsAny(pw, c) {
				t.Fatalf("password %q has no character of %q", pw, c)
			}
		}
	}

	t.Run("defaults: 32 characters, every type", func(t *testing.T) {
		seen := map[string]bool{}
		for range 20 {
			pw := gen(t, &secretsmanager.GetRandomPasswordInput{})
			if len(pw) != 32 {
				t.Fatalf("length %d", len(pw))
			}
			onlyFrom(t, pw, lower+upper+digit+punct)
			hasEach(t, pw, lower, upper, digit, punct)
			if seen[pw] {
				t.Fatal("the same password twice")
			}
			seen[pw] = true
		}
	})

	t.Run("lengths 1 to 4096", func(t *testing.T) {
		for _, n := range []int64{1, 4, 100, 4096} {
			in := &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(n)}
			if n < 4 {
				in.RequireEachIncludedType = aws.Bool(false)
			}
			if pw := gen(t, in); len(pw) != int(n) {
				t.Fatalf("asked %d, got %d", n, len(pw))
			}
		}
		if pw := gen(t, &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(4)}); len(pw) != 4 {
			t.Fatal(pw)
		} else {
			hasEach(t, pw, lower, upper, digit, punct)
		}
	})

	t.Run("exclusions", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			in       *secretsmanager.GetRandomPasswordInput
			allowed  string
			required []string
		}{
			{"no numbers", &secretsmanager.GetRandomPasswordInput{ExcludeNumbers: aws.Bool(true)}, lower + upper + punct, []string{lower, upper, punct}},
			{"no punctuation", &secretsmanager.GetRandomPasswordInput{ExcludePunctuation: aws.Bool(true)}, lower + upper + digit, []string{lower, upper, digit}},
			{"no uppercase", &secretsmanager.GetRandomPasswordInput{ExcludeUppercase: aws.Bool(true)}, lower + digit + punct, []string{lower, digit, punct}},
			{"no lowercase", &secretsmanager.GetRandomPasswordInput{ExcludeLowercase: aws.Bool(true)}, upper + digit + punct, []string{upper, digit, punct}},
			{"digits only", &secretsmanager.GetRandomPasswordInput{ExcludeLowercase: aws.Bool(true), ExcludeUppercase: aws.Bool(true), ExcludePunctuation: aws.Bool(true), PasswordLength: aws.Int64(64)}, digit, []string{digit}},
			{"ExcludeCharacters", &secretsmanager.GetRandomPasswordInput{ExcludeCharacters: aws.String(`"'\/@` + "`" + "abcdefghijklmnopqrstuvwxy"), PasswordLength: aws.Int64(200)},
				"z" + upper + digit + "!#$%&()*+,-.:;<=>?[]^_{|}~", []string{"z", upper, digit}},
			{"ExcludeCharacters empties a class", &secretsmanager.GetRandomPasswordInput{ExcludeCharacters: aws.String(digit), PasswordLength: aws.Int64(3)},
				lower + upper + punct, []string{lower, upper, punct}},
			{"IncludeSpace", &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), PasswordLength: aws.Int64(4096)}, lower + upper + digit + punct + " ", []string{" "}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				pw := gen(t, tc.in)
				onlyFrom(t, pw, tc.allowed)
				hasEach(t, pw, tc.required...)
			})
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name      string
			in        *secretsmanager.GetRandomPasswordInput
			code, msg string
		}{
			{"too short for the required types", &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(3)}, apierr.InvalidParameter, apierr.MsgPasswordTooShort},
			{"everything excluded", &secretsmanager.GetRandomPasswordInput{ExcludeLowercase: aws.Bool(true), ExcludeUppercase: aws.Bool(true),
				ExcludeNumbers: aws.Bool(true), ExcludePunctuation: aws.Bool(true)}, apierr.InvalidParameter, apierr.MsgPasswordNoClasses},
			{"every character excluded", &secretsmanager.GetRandomPasswordInput{ExcludeCharacters: aws.String(lower + upper + digit + punct)}, apierr.InvalidParameter, apierr.MsgPasswordNoClasses},
			{"length 0", &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(0)}, apierr.Validation,
				"1 validation error detected: Value '0' at 'passwordLength' failed to satisfy constraint: Member must have value greater than or equal to 1"},
			{"length 4097", &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(4097)}, apierr.Validation,
				"1 validation error detected: Value '4097' at 'passwordLength' failed to satisfy constraint: Member must have value less than or equal to 4096"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := a.any().GetRandomPassword(ctx, tc.in)
				wantAPIError(t, tc.name, err, tc.code, tc.msg)
			})
		}
	})
	// IncludeSpace (shared/spec §4.14): the space is one of the included
	// types, so with RequireEachIncludedType (the default) every password
	// holds one and it counts towards the length the required types need.
	check := func(t *testing.T, pw string, n int, allowed string, required ...string) {
		t.Helper()
		if len(pw) != n {
			t.Fatalf("%q: length %d, want %d", pw, len(pw), n)
		}
		onlyFrom(t, pw, allowed)
		hasEach(t, pw, required...)
	}
	t.Run("IncludeSpace: every password has a space", func(t *testing.T) {
		// Without the requirement, 32 characters drawn from 95 lack a
		// space about 7 times in 10.
		for range 100 {
			pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true)})
			check(t, pw, 32, lower+upper+digit+punct+" ", lower, upper, digit, punct, " ")
		}
	})
	t.Run("IncludeSpace: RequireEachIncludedType true explicitly", func(t *testing.T) {
		for range 50 {
			pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), RequireEachIncludedType: aws.Bool(true), PasswordLength: aws.Int64(12)})
			check(t, pw, 12, lower+upper+digit+punct+" ", lower, upper, digit, punct, " ")
		}
	})
	t.Run("IncludeSpace: shortest length: one of each of the five types", func(t *testing.T) {
		for range 100 {
			pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), PasswordLength: aws.Int64(5)})
			check(t, pw, 5, lower+upper+digit+punct+" ", lower, upper, digit, punct, " ")
		}
	})
	t.Run("IncludeSpace: with other types excluded", func(t *testing.T) {
		for range 50 {
			pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), ExcludePunctuation: aws.Bool(true),
				ExcludeUppercase: aws.Bool(true), PasswordLength: aws.Int64(3)})
			check(t, pw, 3, lower+digit+" ", lower, digit, " ")
		}
		pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), ExcludeLowercase: aws.Bool(true), ExcludeUppercase: aws.Bool(true),
			ExcludeNumbers: aws.Bool(true), ExcludePunctuation: aws.Bool(true), PasswordLength: aws.Int64(1)})
		if pw != " " {
			t.Fatalf("space only: %q", pw)
		}
	})
	t.Run("IncludeSpace: ExcludeCharacters removes the space type", func(t *testing.T) {
		// The space class is emptied, so it no longer counts: 4 is enough.
		for range 20 {
			pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), ExcludeCharacters: aws.String(" "), PasswordLength: aws.Int64(4)})
			check(t, pw, 4, lower+upper+digit+punct, lower, upper, digit, punct)
		}
	})
	t.Run("IncludeSpace: RequireEachIncludedType false: no space required", func(t *testing.T) {
		withSpace, without := 0, 0
		for range 60 {
			pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), RequireEachIncludedType: aws.Bool(false), PasswordLength: aws.Int64(8)})
			check(t, pw, 8, lower+upper+digit+punct+" ")
			if strings.Contains(pw, " ") {
				withSpace++
			} else {
				without++
			}
		}
		// 8 characters from 95 lack a space 92% of the time.
		if without == 0 {
			t.Fatalf("all %d passwords have a space: it is still required", withSpace)
		}
		pw := gen(t, &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), RequireEachIncludedType: aws.Bool(false), PasswordLength: aws.Int64(1)})
		check(t, pw, 1, lower+upper+digit+punct+" ")
	})
	t.Run("IncludeSpace: too short counts the space", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			in   *secretsmanager.GetRandomPasswordInput
		}{
			{"4 for 5 types", &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), PasswordLength: aws.Int64(4)}},
			{"1 for 5 types", &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), PasswordLength: aws.Int64(1)}},
			{"2 for lower, digits and space", &secretsmanager.GetRandomPasswordInput{IncludeSpace: aws.Bool(true), ExcludePunctuation: aws.Bool(true),
				ExcludeUppercase: aws.Bool(true), PasswordLength: aws.Int64(2)}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := a.any().GetRandomPassword(ctx, tc.in)
				wantAPIError(t, tc.name, err, apierr.InvalidParameter, apierr.MsgPasswordTooShort)
			})
		}
	})
}

func TestAPI_BatchGetSecretValue(t *testing.T) {
	_, a := newOpsEnv(t)
	ctx := ctxT(t)
	s1 := mkSecret(t, a, "bg-1", "one")
	mkSecret(t, a, "bg-2", "two")
	if _, err := a.any().CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bg-bin"), SecretBinary: []byte{0, 9}}); err != nil {
		t.Fatal(err)
	}
	mkSecret(t, a, "bg-novalue", "")
	mkSecret(t, a, "bg-deleted", "x")
	scheduleDeletion(t, a, "bg-deleted")

	t.Run("values and per-secret errors, order kept", func(t *testing.T) {
		ids := []string{"bg-2", "bg-missing", aws.ToString(s1.ARN), "bg-deleted", "bg-bin", "bg-novalue", "bg-2", partialARN(aws.ToString(s1.ARN))}
		out, err := a.any().BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range out.SecretValues {
			got = append(got, aws.ToString(v.Name)+"="+aws.ToString(v.SecretString)+string(v.SecretBinary))
			if v.VersionId == nil || v.CreatedDate == nil || !slices.Equal(v.VersionStages, []string{"AWSCURRENT"}) || !arnPattern(aws.ToString(v.Name)).MatchString(aws.ToString(v.ARN)) {
				t.Fatalf("entry %s: %s %v %v %s", aws.ToString(v.Name), aws.ToString(v.VersionId), v.CreatedDate, v.VersionStages, aws.ToString(v.ARN))
			}
		}
		if want := []string{"bg-2=two", "bg-1=one", "bg-bin=\x00\x09", "bg-2=two", "bg-1=one"}; !slices.Equal(got, want) {
			t.Fatalf("SecretValues %q, want %q", got, want)
		}
		var errs []string
		for _, e := range out.Errors {
			errs = append(errs, aws.ToString(e.SecretId)+" "+aws.ToString(e.ErrorCode)+" "+aws.ToString(e.Message))
		}
		want := []string{
			"bg-missing ResourceNotFoundException " + apierr.MsgSecretNotFound,
			"bg-deleted InvalidRequestException " + apierr.MsgMarkedForDeletion,
			"bg-novalue ResourceNotFoundException Secrets Manager can't find the specified secret value for staging label: AWSCURRENT",
		}
		if !slices.Equal(errs, want) {
			t.Fatalf("Errors\n%q\nwant\n%q", errs, want)
		}
	})

	t.Run("all failing is still a success", func(t *testing.T) {
		out, err := a.any().BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"bg-none"}})
		if err != nil || len(out.SecretValues) != 0 || len(out.Errors) != 1 {
			t.Fatalf("%v %v", out, err)
		}
	})

	t.Run("20 ids", func(t *testing.T) {
		var ids []string
		for range 20 {
			ids = append(ids, "bg-1")
		}
		out, err := a.any().BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids})
		if err != nil || len(out.SecretValues) != 20 || out.NextToken != nil {
			t.Fatalf("%v %v", out, err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		filters := []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"bg-"}}}
		var ids21 []string
		for range 21 {
			ids21 = append(ids21, "bg-1")
		}
		for _, tc := range []struct {
			name      string
			in        *secretsmanager.BatchGetSecretValueInput
			code, msg string
		}{
			{"both lists", &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"bg-1"}, Filters: filters}, apierr.InvalidParameter, apierr.MsgBatchListOrFilters},
			{"neither list", &secretsmanager.BatchGetSecretValueInput{}, apierr.InvalidParameter, apierr.MsgBatchListOrFilters},
			{"MaxResults without Filters", &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"bg-1"}, MaxResults: aws.Int32(5)}, apierr.InvalidParameter, apierr.MsgBatchMaxResults},
			{"filter without values", &secretsmanager.BatchGetSecretValueInput{Filters: []types.Filter{{Key: types.FilterNameStringTypeName}}}, apierr.InvalidParameter, "Invalid filter values for key: name"},
			{"NextToken with a list", &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"bg-1"}, NextToken: aws.String("x")}, apierr.InvalidNextToken, ""},
			{"21 ids", &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids21}, apierr.Validation,
				"1 validation error detected: Value '21 items' at 'secretIdList' failed to satisfy constraint: Member must have length less than or equal to 20 and greater than or equal to 1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := a.any().BatchGetSecretValue(ctx, tc.in)
				wantAPIError(t, tc.name, err, tc.code, tc.msg)
			})
		}
	})
}
