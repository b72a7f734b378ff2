package server_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/server/servertest"
)

// One POST /v1/dev/reset of a dev server hosting three regions with 1,000
// secrets each, end to end: the signed HTTP request, three ResetRegion
// commands committed through three Raft groups in parallel, the answer.
// Seeding is not timed. Numbers are in docs/performance.md ("coffer dev");
// run with
//
//	go test -run '^$' -bench BenchmarkDevReset -benchtime 10x ./server/
func BenchmarkDevReset(b *testing.B) {
	// Each iteration re-seeds 3,000 secrets, untimed: with a time-based
	// -benchtime the harness would predict hundreds of iterations from the
	// short timed part, and `make bench` (-bench . -benchtime 5s) would run
	// for many minutes.
	if bt := flag.Lookup("test.benchtime"); bt == nil || !strings.HasSuffix(bt.Value.String(), "x") {
		b.Skip("run with a count, e.g. -benchtime 10x: every iteration re-seeds 3,000 secrets")
	}
	// secrets=0 is the fixed cost: the signed request and three Raft
	// commits, with nothing to delete.
	for _, perRegion := range []int{1000, 0} {
		b.Run(fmt.Sprintf("secrets=%d", perRegion*3), func(b *testing.B) { benchDevReset(b, perRegion) })
	}
}

func benchDevReset(b *testing.B, perRegion int) {
	regions := []string{"us-east-1", "us-west-2", "us-east-2"}
	d := servertest.NewDev(b, servertest.DevOptions{Regions: regions})
	clients := map[string]*secretsmanager.Client{}
	for _, r := range regions {
		// With retries: with them off the SDK now and then fails to read a
		// large ListSecrets page ("use of closed network connection",
		// aws/aws-sdk-go-v2#2737); its default retryer retries that.
		clients[r] = servertest.NewClient(d.Endpoint, r, servertest.Credentials, 3)
	}
	value := aws.String(string(make([]byte, 64)))
	seed := func() {
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 16 {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < perRegion*len(regions); i = int(next.Add(1) - 1) {
					cl := clients[regions[i%len(regions)]]
					_, err := cl.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
						Name: aws.String(fmt.Sprintf("bench/secret-%d", i/len(regions))), SecretString: value,
						ClientRequestToken: aws.String(fmt.Sprintf("00000000-0000-4000-8000-%012d", i))})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	count := func(region string) int {
		n := 0
		if perRegion == 0 {
			return 0
		}
		p := secretsmanager.NewListSecretsPaginator(clients[region], &secretsmanager.ListSecretsInput{IncludePlannedDeletion: aws.Bool(true)})
		for p.HasMorePages() {
			page, err := p.NextPage(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			n += len(page.SecretList)
		}
		return n
	}
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		seed()
		for _, r := range regions {
			if n := count(r); n != perRegion {
				b.Fatalf("%s holds %d secrets before the reset, want %d", r, n, perRegion)
			}
		}
		b.StartTimer()
		start := time.Now()
		status, body, err := d.Reset("us-east-1")
		total += time.Since(start)
		b.StopTimer()
		if err != nil || status != http.StatusOK {
			b.Fatalf("reset: %d %s %v", status, body, err)
		}
		for _, r := range regions {
			if n := count(r); n != 0 {
				b.Fatalf("%s holds %d secrets after the reset", r, n)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/reset")
	b.ReportMetric(float64(perRegion*len(regions)), "secrets/reset")
}
