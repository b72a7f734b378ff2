package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/server/servertest"
)

// Throughput through a 3-node cluster: 64 concurrent SDK callers, 1 KiB
// values, requests spread round-robin over the nodes. Numbers are recorded
// in docs/performance.md; run with `make bench`.

const benchClients = 64

var benchValue = strings.Repeat("v", 1024)

type benchCluster struct {
	c       *servertest.Cluster
	clients []*secretsmanager.Client
	next    atomic.Uint64
}

func newBenchCluster(b *testing.B, opts ...servertest.Options) *benchCluster {
	bc := &benchCluster{c: servertest.New(b, 3, opts...)}
	for i := range bc.c.Nodes {
		bc.clients = append(bc.clients, bc.c.Client(i))
	}
	return bc
}

// client returns the next node's client, round-robin.
func (bc *benchCluster) client() *secretsmanager.Client {
	return bc.clients[bc.next.Add(1)%uint64(len(bc.clients))]
}

// run spreads b.N calls over benchClients goroutines.
func (bc *benchCluster) run(b *testing.B, call func(ctx context.Context, worker int, cl *secretsmanager.Client) error) {
	var workers atomic.Int64
	b.SetParallelism(max(1, benchClients/runtimeProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		worker := int(workers.Add(1) - 1)
		ctx := context.Background()
		for pb.Next() {
			if err := call(ctx, worker, bc.client()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// seed creates secrets bench-0 … bench-(n-1), skipping those that exist,
// with benchClients callers.
func (bc *benchCluster) seed(b *testing.B, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range benchClients {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				_, err := bc.client().CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
					Name: aws.String(fmt.Sprintf("bench-%d", i)), SecretString: aws.String(benchValue)})
				if err != nil && apiCode(err) != "ResourceExistsException" {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// The put and get benchmarks run with every port encrypted, as servers
// run, and in plaintext (--insecure-plaintext), side by side: what TLS
// costs (docs/performance.md).
var transports = []struct {
	name string
	opts servertest.Options
}{{"tls", servertest.Options{}}, {"plaintext", servertest.Options{Plaintext: true}}}

func BenchmarkPutSecretValue(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) { benchPut(b, tr.opts) })
	}
}

func benchPut(b *testing.B, opts servertest.Options) {
	bc := newBenchCluster(b, opts)
	// A secret holds at most 100 versions younger than a day (the AWS
	// quota), so the writes are spread over enough secrets.
	secrets := b.N/80 + benchClients
	bc.seed(b, secrets)
	var n atomic.Int64
	bc.run(b, func(ctx context.Context, _ int, cl *secretsmanager.Client) error {
		_, err := cl.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(fmt.Sprintf("bench-%d", int(n.Add(1))%secrets)), SecretString: aws.String(benchValue)})
		return err
	})
}

func BenchmarkCreateSecret(b *testing.B) {
	bc := newBenchCluster(b)
	var n atomic.Int64
	bc.run(b, func(ctx context.Context, _ int, cl *secretsmanager.Client) error {
		_, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String(fmt.Sprintf("create-%d", n.Add(1))), SecretString: aws.String(benchValue)})
		return err
	})
}

func BenchmarkGetSecretValue(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) { benchGet(b, tr.opts) })
	}
}

func benchGet(b *testing.B, opts servertest.Options) {
	bc := newBenchCluster(b, opts)
	bc.seed(b, benchClients)
	for _, mode := range []string{"linearizable", "stale"} {
		b.Run(mode, func(b *testing.B) {
			var callOpts []func(*secretsmanager.Options)
			if mode == "stale" {
				callOpts = append(callOpts, withHeader("X-Coffer-Consistency", "stale"))
			}
			bc.run(b, func(ctx context.Context, w int, cl *secretsmanager.Client) error {
				out, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
					SecretId: aws.String(fmt.Sprintf("bench-%d", w%benchClients))}, callOpts...)
				if err == nil && len(aws.ToString(out.SecretString)) != len(benchValue) {
					err = fmt.Errorf("read %d bytes", len(aws.ToString(out.SecretString)))
				}
				return err
			})
		})
	}
}

// BenchmarkBatchGetSecretValue reads 20 secrets per call by SecretIdList
// (1 KiB values): one read index, then 20 decryptions. ops/s counts calls;
// secrets/s is 20 times that.
func BenchmarkBatchGetSecretValue(b *testing.B) {
	bc := newBenchCluster(b)
	bc.seed(b, benchClients)
	bc.run(b, func(ctx context.Context, w int, cl *secretsmanager.Client) error {
		ids := make([]string, 20)
		for i := range ids {
			ids[i] = fmt.Sprintf("bench-%d", (w+i)%benchClients)
		}
		out, err := cl.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids})
		if err == nil && (len(out.SecretValues) != 20 || len(out.Errors) != 0) {
			err = fmt.Errorf("%d values, %d errors", len(out.SecretValues), len(out.Errors))
		}
		return err
	})
	b.ReportMetric(20*float64(b.N)/b.Elapsed().Seconds(), "secrets/s")
}
