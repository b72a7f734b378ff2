package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/audit"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server/servertest"
)

// records reads every record of an audit directory.
func records(t *testing.T, dir string) []audit.Record {
	t.Helper()
	var out []audit.Record
	if err := audit.Tail(context.Background(), dir, audit.Filter{}, false, 0, func(r audit.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// filesContain reports which files under dir hold any of the needles.
func filesContain(t *testing.T, dir string, needles ...string) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				hits = append(hits, path+": "+n)
			}
		}
		return nil
	})
	return hits
}

// TestAudit_OneRecordPerRequest drives a 3-node cluster through the SDK
// and reads the served node's audit log: one record per request, with the
// operation, identity, error and secret; no secret value anywhere; a valid
// chain. Then the fail-closed path: with the audit directory replaced by
// a file the node refuses to serve, and serves again once it is back.
func TestAudit_OneRecordPerRequest(t *testing.T) {
	c := servertest.New(t, 3)
	const served = 1
	node := c.Nodes[served]
	cl := c.Client(served)
	ctx := context.Background()
	v1, v2 := "audit-plaintext-ONE-4f9c2a", "audit-plaintext-TWO-8b1d7e"
	token := "11111111-2222-3333-4444-555555555555"

	created, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("audit/db"), SecretString: aws.String(v1),
		Description: aws.String("audited")})
	if err != nil {
		t.Fatal(err)
	}
	arn := *created.ARN
	if _, err := cl.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("audit/db"), SecretString: aws.String(v2),
		ClientRequestToken: aws.String(token)}); err != nil {
		t.Fatal(err)
	}
	got, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("audit/db")})
	if err != nil || *got.SecretString != v2 {
		t.Fatalf("get: %v", err)
	}
	getRequestID, _ := awsmiddleware.GetRequestIDMetadata(got.ResultMetadata)
	if _, err := cl.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.ListSecrets(ctx, &secretsmanager.ListSecretsInput{}); err != nil {
		t.Fatal(err)
	}
	pw, err := cl.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(40)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("audit/missing")})
	if apiCode(err) != apierr.ResourceNotFound {
		t.Fatalf("missing secret: %v", err)
	}
	bad := servertest.NewClient(node.Endpoint, c.Name, region.Credentials{AccessKeyID: servertest.Credentials.AccessKeyID,
		SecretAccessKey: servertest.Credentials.SecretAccessKey + "x"}, 0)
	_, err = bad.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("audit/db")})
	if apiCode(err) != apierr.InvalidSignature {
		t.Fatalf("badly signed: %v", err)
	}
	// Health is not audited; a signed operator call is.
	if resp, err := http.Get(node.Endpoint + "/v1/health"); err == nil {
		resp.Body.Close()
	}
	adminReq, _ := http.NewRequest(http.MethodGet, node.Endpoint+"/v1/cluster/status", nil)
	acl.Sign(adminReq, nil, servertest.Credentials.AccessKeyID, servertest.Credentials.SecretAccessKey, c.Name, "coffer", time.Now())
	if resp, err := http.DefaultClient.Do(adminReq); err != nil || resp.StatusCode != 200 {
		t.Fatalf("cluster status: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	recs := records(t, node.AuditDir)
	want := []struct {
		name, code string
		secret     bool
		identity   string
	}{
		{"CreateSecret", "", true, "Root"},
		{"PutSecretValue", "", true, "Root"},
		{"GetSecretValue", "", true, "Root"},
		{"DescribeSecret", "", true, "Root"},
		{"ListSecrets", "", false, "Root"},
		{"GetRandomPassword", "", false, "Root"},
		{"GetSecretValue", apierr.ResourceNotFound, false, "Root"},
		{"GetSecretValue", apierr.InvalidSignature, false, "Unknown"},
		{"GET /v1/cluster/status", "", false, "Root"},
	}
	if len(recs) != len(want) {
		for _, r := range recs {
			t.Logf("%s %s", r.EventName, r.ErrorCode)
		}
		t.Fatalf("%d records on the serving node, want %d", len(recs), len(want))
	}
	for i, w := range want {
		r := recs[i]
		if r.EventName != w.name || r.ErrorCode != w.code || r.UserIdentity.Type != w.identity {
			t.Errorf("record %d: %s %q %s, want %s %q %s", i, r.EventName, r.ErrorCode, r.UserIdentity.Type, w.name, w.code, w.identity)
		}
		if r.UserIdentity.AccessKeyID != servertest.Credentials.AccessKeyID || r.Node != node.ID || r.AWSRegion != c.Name ||
			r.SourceIPAddress != "127.0.0.1" || r.RequestID == "" || r.EventID == "" || r.Sequence != uint64(i+1) {
			t.Errorf("record %d: %+v", i, r)
		}
		hasARN := len(r.Resources) == 1 && r.Resources[0].ARN == arn
		if hasARN != w.secret {
			t.Errorf("record %d (%s): resources %+v", i, r.EventName, r.Resources)
		}
	}
	if recs[2].RequestID != getRequestID || string(recs[2].ResponseElements) != "" && string(recs[2].ResponseElements) != "null" {
		t.Errorf("GetSecretValue record: request id %s (client saw %s), responseElements %s", recs[2].RequestID, getRequestID, recs[2].ResponseElements)
	}
	if recs[8].EventSource != audit.SourceAdmin || recs[0].EventSource != audit.SourceSecretsManager || !recs[2].ReadOnly || recs[1].ReadOnly {
		t.Errorf("sources/readOnly: %s %s %v %v", recs[8].EventSource, recs[0].EventSource, recs[2].ReadOnly, recs[1].ReadOnly)
	}
	var params map[string]any
	json.Unmarshal(recs[1].RequestParameters, &params)
	if params["secretId"] != "audit/db" || params["clientRequestToken"] != token || params["secretString"] != nil || len(params) != 2 {
		t.Errorf("PutSecretValue requestParameters %s", recs[1].RequestParameters)
	}
	var resp map[string]any
	json.Unmarshal(recs[1].ResponseElements, &resp)
	if resp["arn"] != arn || resp["versionId"] != token || resp["name"] != "audit/db" {
		t.Errorf("PutSecretValue responseElements %s", recs[1].ResponseElements)
	}
	if !strings.Contains(string(recs[7].ErrorMessage), "signature") {
		t.Errorf("bad signature record: %+v", recs[7])
	}
	for i, n := range c.Nodes {
		if hits := filesContain(t, n.DataDir, v1, v2, *pw.RandomPassword); len(hits) > 0 {
			t.Errorf("plaintext on disk of %s: %v", n.ID, hits)
		}
		rep, err := audit.Verify(n.AuditDir)
		if i != served && (err != nil || rep.Records != 0) {
			t.Errorf("node %s recorded %d requests it did not serve", n.ID, rep.Records)
		}
		if i == served && (err != nil || rep.Records != len(want)) {
			t.Errorf("verify %s: %+v %v", n.ID, rep, err)
		}
	}

	// Fail closed: replace the audit directory by a file (chmod does not
	// stop root).
	dir := node.AuditDir
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("audit/db")})
	if apiCode(err) != apierr.InternalFailure || !strings.Contains(err.Error(), "audit log") || strings.Contains(err.Error(), v2) {
		t.Fatalf("GetSecretValue with the audit log broken: %v", err)
	}
	_, err = cl.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("audit/db"), SecretString: aws.String("never-applied")})
	if apiCode(err) != apierr.InternalFailure {
		t.Fatalf("PutSecretValue with the audit log broken: %v", err)
	}
	metrics := func() string {
		resp, err := http.Get(node.Endpoint + "/v1/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if m := metrics(); !strings.Contains(m, "coffer_audit_write_failures_total 2") || !strings.Contains(m, "coffer_audit_records_total 9") {
		t.Errorf("metrics: %s", grepLines(m, "coffer_audit"))
	}
	// The refused write did not run.
	if desc, err := c.Client(0).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)}); err != nil || len(desc.VersionIdsToStages) != 2 {
		t.Fatalf("describe on another node: %v %v", desc, err)
	}

	// Back: the node serves and the chain goes on.
	os.Remove(dir)
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	got, err = cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("audit/db")})
	if err != nil || *got.SecretString != v2 {
		t.Fatalf("GetSecretValue after the directory came back: %v", err)
	}
	rep, err := audit.Verify(dir)
	if err != nil || rep.Records != len(want)+1 {
		t.Fatalf("verify after recovery: %+v %v", rep, err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// BatchGetSecretValue writes its own record and then one GetSecretValue
// record per secret it was asked for, with the batch's request id and
// that secret's outcome (spec §8.1); no value is in any of them.
func TestAudit_BatchRecordsEachSecret(t *testing.T) {
	c := servertest.New(t, 3)
	node := c.Nodes[0]
	cl := c.Client(0)
	ctx := context.Background()
	const value = "audit-batch-plaintext-7c3e"
	created, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("batch/a"), SecretString: aws.String(value)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := cl.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"batch/a", "batch/missing"}})
	if err != nil || len(out.SecretValues) != 1 || len(out.Errors) != 1 {
		t.Fatalf("batch: %v %+v", err, out)
	}
	batchID, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	recs := records(t, node.AuditDir)
	var tail []audit.Record
	for i, r := range recs {
		if r.EventName == "BatchGetSecretValue" {
			tail = recs[i:]
		}
	}
	if len(tail) != 3 || tail[0].RequestID != batchID {
		t.Fatalf("records from the batch on: %+v", tail)
	}
	for i, want := range []struct{ id, arn, code string }{{"batch/a", *created.ARN, ""}, {"batch/missing", "", "ResourceNotFoundException"}} {
		r := tail[i+1]
		var params map[string]string
		json.Unmarshal(r.RequestParameters, &params)
		arn := ""
		if len(r.Resources) == 1 {
			arn = r.Resources[0].ARN
		}
		if r.EventName != "GetSecretValue" || r.RequestID != batchID || !r.ReadOnly || params["secretId"] != want.id ||
			arn != want.arn || r.ErrorCode != want.code || (r.ResponseElements != nil && string(r.ResponseElements) != "null") {
			t.Errorf("record %d: %+v", i+1, r)
		}
	}
	if found := filesContain(t, node.AuditDir, value); len(found) > 0 {
		t.Fatalf("the value is in %v", found)
	}
	if _, err := audit.Verify(node.AuditDir); err != nil {
		t.Fatal(err)
	}
}

// A deletion window's start, cancellation and end are service events, one
// per version, after the record of the call that caused them (and, for a
// window that runs out, from the purge itself).
func TestAudit_VersionDeleteEvents(t *testing.T) {
	c := servertest.New(t, 3)
	i := c.Leader()
	node, cl := c.Nodes[i], c.Client(i)
	ctx := context.Background()
	created, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("events/a"), SecretString: aws.String("v1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: created.ARN, SecretString: aws.String("v2")}); err != nil {
		t.Fatal(err)
	}
	other, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("events/b"), SecretString: aws.String("v1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []func() error{
		func() error {
			_, err := cl.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: created.ARN, RecoveryWindowInDays: aws.Int64(7)})
			return err
		},
		func() error {
			_, err := cl.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: created.ARN})
			return err
		},
		func() error {
			_, err := cl.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: created.ARN, ForceDeleteWithoutRecovery: aws.Bool(true)})
			return err
		},
		func() error {
			_, err := cl.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: other.ARN, RecoveryWindowInDays: aws.Int64(7)})
			return err
		},
	} {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	if purged, err := node.Region.PurgeExpired(ctx, time.Now().Add(8*24*time.Hour)); err != nil || len(purged) != 1 {
		t.Fatalf("purge: %v %v", purged, err)
	}
	var got []string
	for _, r := range records(t, node.AuditDir) {
		if r.EventType == audit.TypeServiceEvent {
			var data map[string]string
			json.Unmarshal(r.AdditionalEventData, &data)
			if data["VersionId"] == "" || r.UserIdentity.InvokedBy != "secretsmanager.amazonaws.com" {
				t.Errorf("service event %+v", r)
			}
			got = append(got, r.EventName+" "+data["SecretId"])
		} else if r.EventName == "DeleteSecret" || r.EventName == "RestoreSecret" {
			got = append(got, r.EventName)
		}
	}
	a, b := *created.ARN, *other.ARN
	want := []string{"DeleteSecret", "StartSecretVersionDelete " + a, "StartSecretVersionDelete " + a,
		"RestoreSecret", "CancelSecretVersionDelete " + a, "CancelSecretVersionDelete " + a,
		"DeleteSecret", "EndSecretVersionDelete " + a, "EndSecretVersionDelete " + a,
		"DeleteSecret", "StartSecretVersionDelete " + b,
		"EndSecretVersionDelete " + b}
	if !slices.Equal(got, want) {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := audit.Verify(node.AuditDir); err != nil {
		t.Fatal(err)
	}
}
