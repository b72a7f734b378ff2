package server_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/cofferhq/coffer/fsm"
)

// Replication lag between two regions of three nodes each, in one
// process: PutSecretValue into the primary region at a fixed rate (open
// loop, 100 secrets, 1 KiB values, round-robin over the nodes) for 10 s;
// per write, the time from its acknowledgement to the moment the replica
// region's leader holds the version (0 when it got there first). Numbers
// are in docs/performance.md:
//
//	go test -run '^$' -bench ReplicationLag -benchtime 1x ./server/

const lagSecrets = 100

func BenchmarkReplicationLag(b *testing.B) {
	for _, rate := range []int{100, 1000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) { benchLag(b, rate, 10*time.Second) })
	}
}

func benchLag(b *testing.B, rate int, dur time.Duration) {
	_, east, west := twoRegionsWAN(b)
	ctx := context.Background()
	var clients []*secretsmanager.Client
	for i := range east.Nodes {
		clients = append(clients, east.Client(i))
	}
	for s := range lagSecrets {
		if _, err := clients[0].CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(fmt.Sprintf("lag-%d", s)),
			SecretString: aws.String(benchValue), AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String(replicaRegion)}}}); err != nil {
			b.Fatal(err)
		}
	}
	token := func(s, n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", s, n) }

	// The watcher: the replica region's leader's state, after every
	// apply, records when each version first appears.
	var seenMu sync.Mutex
	seen := map[string]time.Time{}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	leader := west.Nodes[west.Leader()].Region
	go func() {
		defer close(watched)
		var last uint64
		for watchCtx.Err() == nil {
			txn, index := leader.FSM().ReadTxn()
			now := time.Now()
			seenMu.Lock()
			for more := true; more; {
				page, err := fsm.ChangesAfter(txn, last, 1024)
				if err != nil {
					panic(err)
				}
				for _, c := range page.Items {
					for _, v := range c.Secret.Versions {
						if _, ok := seen[v.VersionID]; !ok {
							seen[v.VersionID] = now
						}
					}
				}
				last, more = page.Next, page.More
			}
			seenMu.Unlock()
			leader.FSM().WaitApplied(watchCtx, index+1)
		}
	}()

	var mu sync.Mutex
	acked := map[string]time.Time{}
	failed := 0
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	end := time.Now().Add(dur)
	b.ResetTimer()
	for n := 0; time.Now().Before(end); n++ {
		<-tick.C
		select {
		case sem <- struct{}{}:
		default:
			mu.Lock()
			failed++ // the generator is saturated: the write is not sent
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func(n int) {
			defer func() { <-sem; wg.Done() }()
			tok := token(n%lagSecrets, n)
			_, err := clients[n%len(clients)].PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
				SecretId: aws.String(fmt.Sprintf("lag-%d", n%lagSecrets)), SecretString: aws.String(benchValue), ClientRequestToken: aws.String(tok)})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			acked[tok] = time.Now()
		}(n)
	}
	tick.Stop()
	wg.Wait()
	b.StopTimer()
	// Wait for the replica region to hold every acknowledged version.
	deadline := time.Now().Add(time.Minute)
	for {
		missing := 0
		seenMu.Lock()
		for tok := range acked {
			if _, ok := seen[tok]; !ok {
				missing++
			}
		}
		seenMu.Unlock()
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopWatch()
	<-watched
	var lags []time.Duration
	for tok, at := range acked {
		s, ok := seen[tok]
		if !ok {
			b.Fatalf("version %s never reached the replica region", tok)
		}
		lags = append(lags, max(0, s.Sub(at)))
	}
	slices.Sort(lags)
	pct := func(p float64) float64 {
		if len(lags) == 0 {
			return 0
		}
		return float64(lags[min(len(lags)-1, int(p*float64(len(lags))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(acked))/dur.Seconds(), "writes/s")
	b.ReportMetric(float64(failed), "failed")
	b.ReportMetric(pct(0.50), "lag-p50-ms")
	b.ReportMetric(pct(0.99), "lag-p99-ms")
	b.ReportMetric(pct(1), "lag-max-ms")
}
