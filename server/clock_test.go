package server_test

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/server/servertest"
)

// A node's wall clock is injected (region.Config.Clock, Config.Clock), as a
// faults build does with --faults-clock-file: these tests skew one node
// and check what reads that clock (SigV4's request-time window, the Date
// header, command dates, the purge) and that dates stay in log order.

// skewedClock is time.Now plus an offset that a test changes at will.
type skewedClock struct{ offset atomic.Int64 }

func (c *skewedClock) set(d time.Duration) { c.offset.Store(int64(d)) }

func (c *skewedClock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// noSkewCorrection turns off the SDK's clock-skew correction for one call,
// so the request is signed with the client's real time, whatever the
// server's Date header said before.
func noSkewCorrection(o *secretsmanager.Options) { o.DisableClockSkewCorrection = true }

// serverDate is the Date header of an answer from the node.
func serverDate(t *testing.T, endpoint string) time.Time {
	t.Helper()
	resp, err := http.Get(endpoint + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	d, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		t.Fatalf("Date header %q: %v", resp.Header.Get("Date"), err)
	}
	return d
}

// near fails unless got is within tol of want.
func near(t *testing.T, what string, got, want time.Time, tol time.Duration) {
	t.Helper()
	if d := got.Sub(want); d < -tol || d > tol {
		t.Fatalf("%s = %s, want %s ± %s (off by %s)", what, got.UTC().Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano), tol, d)
	}
}

func TestClock_SkewedNode(t *testing.T) {
	var clk skewedClock
	c := servertest.New(t, 1, servertest.Options{TuneRegion: func(rc *region.Config) {
		rc.Clock = clk.now
		rc.PurgeInterval = 100 * time.Millisecond
	}})
	ctx := ctxT(t)
	client := c.Client(0)
	endpoint := c.Nodes[0].Endpoint

	t.Run("SigV4 refuses a request signed at real time", func(t *testing.T) {
		for _, tc := range []struct {
			offset time.Duration
			msg    string
		}{
			{20 * time.Minute, "Signature expired: "},
			{-20 * time.Minute, "Signature not yet current: "},
		} {
			clk.set(tc.offset)
			near(t, "Date header", serverDate(t, endpoint), time.Now().Add(tc.offset), 2*time.Second)
			_, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
				Name: aws.String("skewed"), SecretString: aws.String("v")}, noSkewCorrection)
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != apierr.InvalidSignature || !strings.HasPrefix(ae.ErrorMessage(), tc.msg) {
				t.Fatalf("offset %s: got %v, want %s %q...", tc.offset, err, apierr.InvalidSignature, tc.msg)
			}
			var re *awshttp.ResponseError
			if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadRequest ||
				re.Response.Header.Get(server.HeaderOutcome) != "not-applied" {
				t.Fatalf("offset %s: want HTTP 400 with %s not-applied, got %v", tc.offset, server.HeaderOutcome, err)
			}
		}
		clk.set(0)
		if _, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("skewed")}); apiCode(err) != apierr.ResourceNotFound {
			t.Fatalf("a refused CreateSecret left something behind: %v", err)
		}
	})

	t.Run("the SDK corrects its signing time from the Date header", func(t *testing.T) {
		// Documented SDK behaviour (clock skew correction): the skewed
		// node's Date header makes a retrying client re-sign at the
		// node's time, so the call succeeds on its second attempt.
		clk.set(20 * time.Minute)
		defer clk.set(0)
		retrying := servertest.NewClient(endpoint, servertest.Region, servertest.Credentials, 3)
		if _, err := retrying.ListSecrets(ctx, &secretsmanager.ListSecretsInput{}); err != nil {
			t.Fatalf("a retrying SDK client against a node 20 minutes ahead: %v", err)
		}
	})

	t.Run("dates come from the node's clock and follow the log", func(t *testing.T) {
		clk.set(2 * time.Minute)
		before := time.Now()
		out, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String("ahead"), SecretString: aws.String("v1"), ClientRequestToken: aws.String(strings.Repeat("1", 32))}, noSkewCorrection)
		if err != nil {
			t.Fatalf("CreateSecret on a node 2 minutes ahead: %v", err)
		}
		d, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: out.ARN}, noSkewCorrection)
		if err != nil {
			t.Fatal(err)
		}
		created := aws.ToTime(d.CreatedDate)
		near(t, "CreatedDate", created, before.Add(2*time.Minute), 5*time.Second)

		// The node's clock goes back 5 minutes: the next version is not
		// dated before the first.
		clk.set(-3 * time.Minute)
		if _, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: out.ARN,
			SecretString: aws.String("v2"), ClientRequestToken: aws.String(strings.Repeat("2", 32))}, noSkewCorrection); err != nil {
			t.Fatal(err)
		}
		vs, err := client.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: out.ARN}, noSkewCorrection)
		if err != nil {
			t.Fatal(err)
		}
		dates := map[string]time.Time{}
		for _, v := range vs.Versions {
			dates[aws.ToString(v.VersionId)] = aws.ToTime(v.CreatedDate)
		}
		v1, v2 := dates[strings.Repeat("1", 32)], dates[strings.Repeat("2", 32)]
		if v1.IsZero() || v2.Before(v1) {
			t.Fatalf("version dates %v: the second version is dated before the first", dates)
		}
		d, err = client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: out.ARN}, noSkewCorrection)
		if err != nil {
			t.Fatal(err)
		}
		if lc := aws.ToTime(d.LastChangedDate); lc.Before(v2) {
			t.Fatalf("LastChangedDate %s went back before the version it records (%s)", lc, v2)
		}
		clk.set(0)
	})

	t.Run("the purge reads the node's clock", func(t *testing.T) {
		clk.set(0)
		out, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String("purge-early"), SecretString: aws.String("v")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: out.ARN,
			RecoveryWindowInDays: aws.Int64(7)}); err != nil {
			t.Fatal(err)
		}
		region := c.Nodes[0].Region
		exists := func() bool {
			txn, _ := region.FSM().ReadTxn()
			return fsm.SecretByARN(txn, aws.ToString(out.ARN)) != nil
		}
		if !exists() {
			t.Fatal("purged before its recovery window ended")
		}
		// The leader's clock jumps 8 days ahead: the window has ended.
		clk.set(8 * 24 * time.Hour)
		defer clk.set(0)
		c.Eventually(10*time.Second, "the purge on a clock 8 days ahead", func() bool { return !exists() })
	})
}
