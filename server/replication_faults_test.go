package server_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/server/servertest"
)

// Faults under a stream of replicated writes: the primary region's
// leader and then the replica region's leader are killed while a writer
// keeps writing. No version is lost, every version arrives once with its
// value, and the replica's current value never goes back.

func TestReplication_LeadersKilledMidStream(t *testing.T) {
	east, west := twoRegions(t)
	ctx := ctxT(t)
	name := aws.String("stream")
	if _, err := east.Client(0).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: name, SecretString: aws.String("0"),
		AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String(replicaRegion)}}}); err != nil {
		t.Fatal(err)
	}
	waitInSync(t, east, "stream")

	// The writer writes 1, 2, 3, … in order, each retried with its token
	// until it is acknowledged, on whichever east node is up.
	// Clients are made up front: the cluster's methods are not safe to
	// call while the test kills and restarts nodes (addresses stay).
	eastClients, westClients := map[int]*secretsmanager.Client{}, map[string]*secretsmanager.Client{}
	for i := range east.Nodes {
		eastClients[i] = east.Client(i)
	}
	for i, n := range west.Nodes {
		westClients[n.ID] = west.Client(i)
	}
	var mu sync.Mutex
	acked := 0
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		for i := 1; ; i++ {
			for attempt := 0; ; attempt++ {
				select {
				case <-stop:
					writerDone <- nil
					return
				default:
				}
				c := eastClients[attempt%len(eastClients)]
				_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: name, SecretString: aws.String(strconv.Itoa(i)),
					ClientRequestToken: aws.String(versionToken("stream", strconv.Itoa(i)))})
				if err == nil {
					mu.Lock()
					acked = i
					mu.Unlock()
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	// The reader polls the replica's current value on every west node
	// that is up and records what it sees, in order, per node.
	seen := map[string][]int{}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for id, c := range westClients {
				v, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: name})
				if err != nil {
					continue // a killed node
				}
				n, _ := strconv.Atoi(aws.ToString(v.SecretString))
				seen[id] = append(seen[id], n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	progress := func(what string, more int) {
		t.Helper()
		mu.Lock()
		from := acked
		mu.Unlock()
		east.Eventually(60*time.Second, what, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return acked >= from+more
		})
	}
	progress("writes before the faults", 20)
	killed := east.Leader()
	east.Kill(killed)
	progress("writes after the primary's leader died", 20)
	east.Restart(killed)
	wl := west.Leader()
	west.Kill(wl)
	progress("writes after the replica's leader died", 20)
	west.Restart(wl)
	progress("writes after both came back", 10)
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	<-readerDone
	mu.Lock()
	last := acked
	mu.Unlock()
	t.Logf("%d writes acknowledged", last)

	east.WaitServing()
	west.WaitServing()
	waitInSync(t, east, "stream")
	// A restarted node can unsettle its region's leadership for a moment:
	// compare once every node of both regions has answered twice running.
	for _, c := range []*servertest.Cluster{east, west} {
		streak := 0
		lastErr := ""
		c.Eventually(30*time.Second, "every node answering", func() bool {
			for _, i := range c.Running() {
				if _, err := c.Client(i).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: name}); err != nil {
					if msg := c.Nodes[i].ID + ": " + err.Error(); msg != lastErr {
						lastErr = msg
						t.Logf("not answering yet: %s", msg)
					}
					streak = 0
					return false
				}
			}
			streak++
			return streak >= 2
		})
	}
	sameSecret(t, east, west, "stream")
	// Every acknowledged version is in the replica region, once each.
	ids := map[string]int{}
	pages := secretsmanager.NewListSecretVersionIdsPaginator(west.Client(west.Leader()),
		&secretsmanager.ListSecretVersionIdsInput{SecretId: name, IncludeDeprecated: aws.Bool(true), MaxResults: aws.Int32(20)})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range out.Versions {
			ids[aws.ToString(v.VersionId)]++
		}
	}
	for i := 1; i <= last; i++ {
		if n := ids[versionToken("stream", strconv.Itoa(i))]; n != 1 {
			t.Fatalf("version %d appears %d times in the replica region (versions: %v)", i, n, slices.Collect(maps.Keys(ids)))
		}
	}
	// The replica's current value, as each west node served it, only
	// moves forward.
	for node, vals := range seen {
		for i := 1; i < len(vals); i++ {
			if vals[i] < vals[i-1] {
				t.Fatalf("%s served %d after %d: %s", node, vals[i], vals[i-1], summary(vals))
			}
		}
	}
}

func summary(vals []int) string {
	var b strings.Builder
	for i, v := range vals {
		if i > 0 && vals[i-1] == v {
			continue
		}
		fmt.Fprintf(&b, "%d ", v)
	}
	return b.String()
}

// The link is cut while the primary changes, deletes and creates
// replicated secrets; the lag is reported; then the change feed is
// compacted past the replica region's cursor, so after the heal the
// shipper must resend every replicated secret in full (and the pending
// drops) rather than follow the feed. The replica region converges.
func TestReplication_LinkCutAndCompactedFeedResync(t *testing.T) {
	wan, east, west := twoRegionsWAN(t)
	ctx := ctxT(t)
	e, w := east.Client(0), west.Client(0)
	replicated := []types.ReplicaRegionType{{Region: aws.String(replicaRegion)}}
	for _, n := range []string{"keep", "gone"} {
		if _, err := e.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(n), SecretString: aws.String(n + "-1"),
			AddReplicaRegions: replicated}); err != nil {
			t.Fatal(err)
		}
		waitInSync(t, east, n)
	}

	wan.Cut(servertest.Region, replicaRegion)
	for i := 2; i <= 4; i++ {
		if _, err := e.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("keep"), SecretString: aws.String(fmt.Sprintf("keep-%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("keep"), Description: aws.String("changed while cut")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{SecretId: aws.String("gone"), RemoveReplicaRegions: []string{replicaRegion}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("gone"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("new"), SecretString: aws.String("new-1"), AddReplicaRegions: replicated}); err != nil {
		t.Fatal(err)
	}
	var st server.ReplicationStatusOut
	east.Eventually(30*time.Second, "the lag and the error reported", func() bool {
		st = server.ReplicationStatusOut{}
		adminCall(t, east.Nodes[0].Endpoint, "/v1/replication/status", nil, &st, true)
		return len(st.Replicas) == 1 && st.Replicas[0].Pending >= 3 && st.Replicas[0].Error != ""
	})
	t.Logf("while cut: %+v", st.Replicas[0])

	// Compact every tombstone: the feed no longer reaches back to the
	// replica region's cursor.
	leader := east.Nodes[east.Leader()].Region
	if n, err := leader.CompactTombstones(ctx, time.Now().Add(1000*time.Hour)); err != nil || n == 0 {
		t.Fatalf("compact: %d, %v", n, err)
	}
	txn, _ := leader.FSM().ReadTxn()
	if _, err := fsm.ChangesAfter(txn, fsm.ReplTargetOf(txn, replicaRegion).Acked, 10); !errors.Is(err, fsm.ErrCompacted) {
		t.Fatalf("the feed after the replica's cursor: %v, want ErrCompacted", err)
	}

	wan.Heal()
	waitInSync(t, east, "keep")
	waitInSync(t, east, "new")
	sameSecret(t, east, west, "keep")
	sameSecret(t, east, west, "new")
	west.Eventually(30*time.Second, "the removed replica deleted", func() bool {
		_, err := w.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("gone")})
		return apiCode(err) == apierr.ResourceNotFound
	})
	east.Eventually(30*time.Second, "nothing pending", func() bool {
		st = server.ReplicationStatusOut{} // omitted fields must not keep earlier values
		adminCall(t, east.Nodes[0].Endpoint, "/v1/replication/status", nil, &st, true)
		return len(st.Replicas) == 1 && st.Replicas[0].Pending == 0 && st.Replicas[0].Error == "" && st.Replicas[0].LagSeconds == 0
	})
}
