package server_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/cofferhq/coffer/server/servertest"
)

// scrape reads a node's /v1/metrics (no signature, as a Prometheus
// scraper) and returns the value of every sample, by series as written.
func scrape(t *testing.T, endpoint string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(endpoint + "/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/v1/metrics: status %d", resp.StatusCode)
	}
	body, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	sample := regexp.MustCompile(`^(\S+) (\S+)$`)
	for _, line := range strings.Split(string(body), "\n") {
		if m := sample.FindStringSubmatch(line); m != nil && !strings.HasPrefix(line, "#") {
			v, err := strconv.ParseFloat(m[2], 64)
			if err == nil {
				out[m[1]] = v
			}
		}
	}
	return out
}

// The metrics endpoint, scraped during a workload: the request counters
// match the requests sent, by operation and outcome, the latency
// histogram counted each one, and each node reports its Raft figures
// (one leader among the three, three voters everywhere).
func TestCluster_MetricsCountTheRequestsSent(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	node := c.Followers()[0]
	cl := servertest.NewClient(c.Nodes[node].Endpoint, servertest.Region, servertest.Credentials, 1) // no retries: one request each
	before := scrape(t, c.Nodes[node].Endpoint)
	const creates, misses = 7, 4
	for i := range creates {
		if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(fmt.Sprintf("m-%d", i)), SecretString: aws.String("v")}); err != nil {
			t.Fatal(err)
		}
	}
	for range misses {
		if _, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("missing")}); apiCode(err) != "ResourceNotFoundException" {
			t.Fatalf("a read of a missing secret: %v", err)
		}
	}
	after := scrape(t, c.Nodes[node].Endpoint)
	for series, want := range map[string]float64{
		`coffer_requests_total{code="OK",operation="CreateSecret"}`:                          creates,
		`coffer_requests_total{code="ResourceNotFoundException",operation="GetSecretValue"}`: misses,
		`coffer_request_duration_seconds_count{operation="CreateSecret"}`:                    creates,
		`coffer_request_duration_seconds_count{operation="GetSecretValue"}`:                  misses,
	} {
		if got := after[series] - before[series]; got != want {
			t.Errorf("%s went up by %v, want %v", series, got, want)
		}
	}
	leaders := 0.0
	for _, n := range c.Nodes {
		m := scrape(t, n.Endpoint)
		leaders += m[`coffer_raft_leader{region="us-east-1"}`]
		if m[`coffer_raft_voters{region="us-east-1"}`] != 3 || m[`coffer_raft_term{region="us-east-1"}`] < 1 ||
			m[`coffer_raft_applied_index{region="us-east-1"}`] < 1 || m[`coffer_sealed{region="us-east-1"}`] != 0 {
			t.Errorf("%s: raft figures %v", n.ID, m)
		}
		// Present before any removal, at 0.
		if v, ok := m[`coffer_dead_servers_removed_total{region="us-east-1"}`]; !ok || v != 0 {
			t.Errorf("%s: raft figures %v", n.ID, m)
		}
	}
	if leaders != 1 {
		t.Errorf("%v nodes report leading", leaders)
	}
}

// The replication figures of coffer region status are on /v1/metrics:
// in sync, nothing pending and no lag; with the link cut, changes pending,
// a lag that grows and the failure flagged; healed, back to zero. The
// replica region reports how far it applied its primary's log.
func TestReplication_Metrics(t *testing.T) {
	wan, east, west := twoRegionsWAN(t)
	ctx := ctxT(t)
	e := east.Client(0)
	if _, err := e.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("m"), SecretString: aws.String("v1"),
		AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String(replicaRegion)}}}); err != nil {
		t.Fatal(err)
	}
	waitInSync(t, east, "m")
	series := func(name string) string {
		return name + `{region="` + servertest.Region + `",replica="` + replicaRegion + `"}`
	}
	east.Eventually(30*time.Second, "in sync on the metrics", func() bool {
		m := scrape(t, east.Nodes[0].Endpoint)
		return m[series("coffer_replication_acked_index")] > 0 && m[series("coffer_replication_pending_changes")] == 0 &&
			m[series("coffer_replication_lag_seconds")] == 0 && m[series("coffer_replication_failing")] == 0
	})
	west.Eventually(30*time.Second, "the replica region's applied index", func() bool {
		m := scrape(t, west.Nodes[1].Endpoint)
		return m[`coffer_replication_source_applied_index{region="`+replicaRegion+`",source="`+servertest.Region+`"}`] > 0
	})

	wan.Cut(servertest.Region, replicaRegion)
	if _, err := e.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("m"), SecretString: aws.String("v2")}); err != nil {
		t.Fatal(err)
	}
	east.Eventually(30*time.Second, "the lag and the failure on the metrics", func() bool {
		m := scrape(t, east.Nodes[0].Endpoint)
		return m[series("coffer_replication_pending_changes")] == 1 && m[series("coffer_replication_lag_seconds")] > 0 &&
			m[series("coffer_replication_failing")] == 1
	})
	wan.Heal()
	east.Eventually(60*time.Second, "back in sync on the metrics", func() bool {
		m := scrape(t, east.Nodes[0].Endpoint)
		return m[series("coffer_replication_pending_changes")] == 0 && m[series("coffer_replication_lag_seconds")] == 0 &&
			m[series("coffer_replication_failing")] == 0
	})
}
