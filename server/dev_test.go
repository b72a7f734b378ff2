package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/server/servertest"
)

const devAccount = "123456789012"

var devRegions = []string{"us-east-1", "us-west-2"}

func devCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// devCreate creates name=value with a fresh token.
func devCreate(t *testing.T, cl *secretsmanager.Client, name, value string) *secretsmanager.CreateSecretOutput {
	t.Helper()
	out, err := cl.CreateSecret(devCtx(t), &secretsmanager.CreateSecretInput{Name: aws.String(name),
		SecretString: aws.String(value), ClientRequestToken: aws.String(versionToken(name, value))})
	if err != nil {
		t.Fatalf("CreateSecret %s: %v", name, err)
	}
	return out
}

// devList returns the names ListSecrets gives, scheduled deletions included.
func devList(t *testing.T, cl *secretsmanager.Client) []string {
	t.Helper()
	var names []string
	p := secretsmanager.NewListSecretsPaginator(cl, &secretsmanager.ListSecretsInput{IncludePlannedDeletion: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(devCtx(t))
		if err != nil {
			t.Fatalf("ListSecrets: %v", err)
		}
		for _, e := range page.SecretList {
			names = append(names, aws.ToString(e.Name))
		}
	}
	return names
}

// One endpoint, two regions, one account: each region sees only its own
// secrets, ARNs carry the region and the account, and ARNs naming another
// account or region are not found, as in AWS.
func TestDev_RegionsAndAccountInARNs(t *testing.T) {
	d := servertest.NewDev(t, servertest.DevOptions{Regions: devRegions, AccountID: devAccount})
	west, east := d.Client("us-west-2"), d.Client("us-east-1")
	out := devCreate(t, west, "app/db", "west-value")
	arn := aws.ToString(out.ARN)
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:us-west-2:"+devAccount+":secret:app/db-") || len(arn) != len("arn:aws:secretsmanager:us-west-2:"+devAccount+":secret:app/db-")+6 {
		t.Fatalf("ARN %s: want region us-west-2, account %s, name app/db and a 6-character suffix", arn, devAccount)
	}
	partial := strings.TrimSuffix(arn, arn[len(arn)-7:])
	for _, id := range []string{"app/db", arn, partial} {
		got, err := west.GetSecretValue(devCtx(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil || aws.ToString(got.SecretString) != "west-value" || aws.ToString(got.ARN) != arn {
			t.Fatalf("us-west-2 GetSecretValue(%s) = %v, %v", id, got, err)
		}
	}
	otherAccount := strings.Replace(arn, ":"+devAccount+":", ":000000000000:", 1)
	otherRegion := strings.Replace(arn, ":us-west-2:", ":us-east-1:", 1)
	for _, tc := range []struct {
		name string
		cl   *secretsmanager.Client
		id   string
	}{
		{"name in the other region", east, "app/db"},
		{"full ARN in the other region", east, arn},
		{"full ARN of another account", west, otherAccount},
		{"partial ARN of another account", west, strings.Replace(partial, ":"+devAccount+":", ":000000000000:", 1)},
		{"ARN of another region", west, otherRegion},
		{"ARN of this region, asked in the other", east, otherRegion},
	} {
		_, err := tc.cl.DescribeSecret(devCtx(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(tc.id)})
		wantAPIError(t, tc.name+" ("+tc.id+")", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	}
	// The same name is free in the other region; it gets its own ARN there.
	eastARN := aws.ToString(devCreate(t, east, "app/db", "east-value").ARN)
	if !strings.HasPrefix(eastARN, "arn:aws:secretsmanager:us-east-1:"+devAccount+":secret:app/db-") {
		t.Fatalf("us-east-1 ARN %s", eastARN)
	}
	got, err := west.GetSecretValue(devCtx(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")})
	if err != nil || aws.ToString(got.SecretString) != "west-value" {
		t.Fatalf("us-west-2 value after the us-east-1 create: %v, %v", got, err)
	}

	// A region the endpoint does not host is refused, naming those it does.
	_, err = d.Client("eu-west-3").ListSecrets(devCtx(t), &secretsmanager.ListSecretsInput{})
	wantAPIError(t, "ListSecrets signed for eu-west-3", err, apierr.InvalidSignature,
		"Credential should be scoped to a valid region, not 'eu-west-3'. This endpoint serves: us-east-1, us-west-2.")

	// /v1/health reports every hosted region.
	resp, err := http.Get(d.Endpoint + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Regions []struct {
			Region  string `json:"region"`
			Serving bool   `json:"serving"`
		} `json:"regions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health: status %d, %v", resp.StatusCode, err)
	}
	if len(h.Regions) != 2 || h.Regions[0].Region != "us-east-1" || h.Regions[1].Region != "us-west-2" ||
		!h.Regions[0].Serving || !h.Regions[1].Serving {
		t.Fatalf("health regions %+v, want us-east-1 and us-west-2 serving", h.Regions)
	}
}

// Reset empties every hosted region, scheduled deletions and all versions
// included, keeps the credentials and the account, and the same names can
// be created again.
func TestDevReset_WipesEveryRegion(t *testing.T) {
	d := servertest.NewDev(t, servertest.DevOptions{Regions: devRegions, AccountID: devAccount})
	oldARNs := map[string]string{}
	for _, region := range devRegions {
		cl := d.Client(region)
		for _, name := range []string{"a", "b", "scheduled"} {
			oldARNs[region+"/"+name] = aws.ToString(devCreate(t, cl, name, region+"-"+name).ARN)
		}
		if _, err := cl.PutSecretValue(devCtx(t), &secretsmanager.PutSecretValueInput{SecretId: aws.String("a"),
			SecretString: aws.String("second"), ClientRequestToken: aws.String(versionToken("a", "second"))}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.DeleteSecret(devCtx(t), &secretsmanager.DeleteSecretInput{SecretId: aws.String("scheduled")}); err != nil {
			t.Fatal(err)
		}
		if got := devList(t, cl); len(got) != 3 {
			t.Fatalf("%s lists %v before the reset", region, got)
		}
	}

	// Signed for either region, the reset empties both.
	status, body, err := d.Reset("us-west-2")
	if err != nil || status != http.StatusOK {
		t.Fatalf("reset: %d %s %v", status, body, err)
	}
	var answer struct {
		Regions []struct {
			Region string `json:"region"`
			Index  uint64 `json:"index"`
		} `json:"regions"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || len(answer.Regions) != 2 ||
		answer.Regions[0].Region != "us-east-1" || answer.Regions[1].Region != "us-west-2" ||
		answer.Regions[0].Index == 0 || answer.Regions[1].Index == 0 {
		t.Fatalf("reset answer %s (%v): want both regions with their Raft index", body, err)
	}
	for _, region := range devRegions {
		cl := d.Client(region)
		if got := devList(t, cl); len(got) != 0 {
			t.Fatalf("%s lists %v after the reset, want nothing", region, got)
		}
		_, err := cl.GetSecretValue(devCtx(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String(oldARNs[region+"/a"])})
		wantAPIError(t, region+" GetSecretValue of a wiped ARN", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		// Same names, the scheduled one too; same credentials; same account.
		for _, name := range []string{"a", "b", "scheduled"} {
			arn := aws.ToString(devCreate(t, cl, name, "again-"+name).ARN)
			if arn == oldARNs[region+"/"+name] || !strings.HasPrefix(arn, "arn:aws:secretsmanager:"+region+":"+devAccount+":secret:"+name+"-") {
				t.Fatalf("%s re-created %s as %s (before the reset: %s)", region, name, arn, oldARNs[region+"/"+name])
			}
		}
		got, err := cl.DescribeSecret(devCtx(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String("a")})
		if err != nil || len(got.VersionIdsToStages) != 1 {
			t.Fatalf("%s re-created secret a: %+v, %v; want a single version", region, got, err)
		}
	}
	// The region records survived: same keyring, same account.
	for name, r := range d.Regions {
		txn, _ := r.FSM().ReadTxn()
		if rec := fsm.RegionRecord(txn); rec == nil || rec.AccountID != devAccount || rec.Name != name {
			t.Fatalf("region record of %s after reset: %+v", name, rec)
		}
	}
	// An empty server resets too.
	if _, _, err := d.Reset("us-east-1"); err != nil {
		t.Fatal(err)
	}
}

// rawDevReset sends POST /v1/dev/reset signed as sign says, or unsigned.
func rawDevReset(t *testing.T, endpoint string, sign func(*http.Request)) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint+"/v1/dev/reset", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	if sign != nil {
		sign(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"Message"`
	}
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Type, e.Message
}

func devSign(keyID, secret, region, service string) func(*http.Request) {
	return func(r *http.Request) { acl.Sign(r, nil, keyID, secret, region, service, time.Now()) }
}

// The reset is authenticated like the operator endpoints: SigV4, signing
// name "coffer", the root key of a hosted region. Everything else is
// refused and wipes nothing.
func TestDevReset_Authentication(t *testing.T) {
	d := servertest.NewDev(t, servertest.DevOptions{Regions: devRegions})
	devCreate(t, d.Client("us-east-1"), "survivor", "v")
	id, secret := servertest.Credentials.AccessKeyID, servertest.Credentials.SecretAccessKey
	for _, tc := range []struct {
		name       string
		sign       func(*http.Request)
		status     int
		code, want string
	}{
		{"unsigned", nil, http.StatusForbidden, apierr.MissingAuthenticationTok, "Missing Authentication Token"},
		{"signing name secretsmanager", devSign(id, secret, "us-east-1", "secretsmanager"), 400, apierr.InvalidSignature, "correct service: 'coffer'"},
		{"unknown access key", devSign("AKIAUNKNOWNUNKNOWN00", secret, "us-east-1", "coffer"), 400, apierr.UnrecognizedClient, apierr.MsgUnknownAccessKey},
		{"wrong secret key", devSign(id, secret+"x", "us-east-1", "coffer"), 400, apierr.InvalidSignature, "signature we calculated does not match"},
		{"region not hosted", devSign(id, secret, "eu-west-3", "coffer"), 400, apierr.InvalidSignature, "This endpoint serves: us-east-1, us-west-2."},
	} {
		status, code, msg := rawDevReset(t, d.Endpoint, tc.sign)
		if status != tc.status || code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %s %q; want %d %s containing %q", tc.name, status, code, msg, tc.status, tc.code, tc.want)
		}
	}
	if got := devList(t, d.Client("us-east-1")); len(got) != 1 {
		t.Fatalf("after refused resets us-east-1 lists %v, want [survivor]", got)
	}
}

// A `coffer server` has no reset: 404 with an AWS-style error, signed or
// not, and its secrets stay.
func TestDevReset_NotFoundOnServer(t *testing.T) {
	c := servertest.New(t, 1)
	devCreate(t, c.Client(0), "keep-me", "v")
	creds := servertest.Credentials
	for _, sign := range []func(*http.Request){nil, devSign(creds.AccessKeyID, creds.SecretAccessKey, servertest.Region, "coffer")} {
		status, code, msg := rawDevReset(t, c.Nodes[0].Endpoint, sign)
		if status != http.StatusNotFound || code != apierr.UnknownOperation || !strings.Contains(msg, "coffer dev") {
			t.Fatalf("reset on a server (signed: %v): %d %s %q; want 404 %s", sign != nil, status, code, msg, apierr.UnknownOperation)
		}
	}
	if got := devList(t, c.Client(0)); len(got) != 1 {
		t.Fatalf("the server lists %v after the refused reset", got)
	}
}

// Replication between the regions of one dev server is not there yet: the
// operations say so, by name, and change nothing.
// coffer dev replicates between its regions with the servers' code, and
// answers a write once the replica regions applied it: a test reads its
// own writes in every region with no sleep (docs/dev-mode.md).
func TestDev_ReplicationReadsYourWritesEverywhere(t *testing.T) {
	d := servertest.NewDev(t, servertest.DevOptions{Regions: []string{"us-east-1", "us-west-2", "eu-west-1"}})
	east, west, eu := d.Client("us-east-1"), d.Client("us-west-2"), d.Client("eu-west-1")
	ctx := devCtx(t)
	value := func(cl *secretsmanager.Client, id string) string {
		t.Helper()
		out, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		return aws.ToString(out.SecretString)
	}
	if _, err := east.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app"), SecretString: aws.String("v1"),
		AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String("us-west-2")}, {Region: aws.String("eu-west-1")}}}); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 10; i++ {
		v := fmt.Sprint("v", i)
		if _, err := east.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("app"), SecretString: aws.String(v)}); err != nil {
			t.Fatal(err)
		}
		if got, got2 := value(west, "app"), value(eu, "app"); got != v || got2 != v {
			t.Fatalf("right after writing %s: us-west-2 reads %s, eu-west-1 %s", v, got, got2)
		}
	}
	out, err := east.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("app")})
	if err != nil || len(out.ReplicationStatus) != 2 || out.ReplicationStatus[0].Status != types.StatusTypeInSync ||
		out.ReplicationStatus[1].Status != types.StatusTypeInSync {
		t.Fatalf("the primary's ReplicationStatus: %+v, %v", out, err)
	}
	if _, err := east.RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{SecretId: aws.String("app"),
		RemoveReplicaRegions: []string{"eu-west-1"}}); err != nil {
		t.Fatal(err)
	}
	if got := devList(t, eu); len(got) != 0 {
		t.Fatalf("eu-west-1 lists %v right after the region was removed", got)
	}
	if _, err := west.StopReplicationToReplica(ctx, &secretsmanager.StopReplicationToReplicaInput{SecretId: aws.String("app")}); err != nil {
		t.Fatal(err)
	}
	if _, err := west.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("app"), SecretString: aws.String("west")}); err != nil {
		t.Fatalf("write the promoted secret: %v", err)
	}
	// A reset empties every region, replication state included.
	if status, body, err := d.Reset("us-east-1"); err != nil || status != 200 {
		t.Fatalf("reset: %d %s %v", status, body, err)
	}
	for _, cl := range []*secretsmanager.Client{east, west, eu} {
		if got := devList(t, cl); len(got) != 0 {
			t.Fatalf("after the reset: %v", got)
		}
	}
}
