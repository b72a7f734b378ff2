package server_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/server/servertest"
)

// ListSecrets over large tables through a 3-node cluster, one SDK caller
// at a time (so ns/op is the latency of one call): the first page of 100,
// and a page from the middle of the table by NextToken, without a filter
// and with filters that match 10% of the secrets. Numbers are in
// docs/performance.md ("ListSecrets and BatchGetSecretValue"):
//
//	go test -run '^$' -bench 'ListSecrets' -benchtime 3s -timeout 30m ./server/

// seedDirect creates ls-<i%10>-<i> for i < n by applying CreateSecret
// commands straight to the leader's Raft node (64 at a time), with a
// 1-byte value sealed as the API would. Every tenth secret carries
// "Tenth" in its description.
func seedDirect(b *testing.B, c *servertest.Cluster, n int) { seedDirectValue(b, c, n, []byte("v")) }

// seedDirectValue is seedDirect with value as every secret's value.
func seedDirectValue(b *testing.B, c *servertest.Cluster, n int, value []byte) {
	r := c.Nodes[c.Leader()].Region
	kr, err := r.Keyring()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				name := fmt.Sprintf("ls-%d-%06d", i%10, i)
				arn := "arn:aws:secretsmanager:" + servertest.Region + ":000000000000:secret:" + name + "-abcdef"
				vid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
				env, err := kr.Encrypt(kr.KEKID, value, crypto.ValueAAD(arn, vid))
				if err != nil {
					b.Error(err)
					return
				}
				desc := "a listed secret"
				if i%10 == 3 {
					desc = "one Tenth of them"
				}
				cmd, err := fsm.Encode(fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: name, Description: desc,
					Date: time.Now().UnixMilli(), Version: &fsm.NewVersion{VersionID: vid, Value: env, Digest: kr.Digest("s", value)}})
				if err != nil {
					b.Error(err)
					return
				}
				if _, _, err := r.Node().Apply(context.Background(), cmd); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.Logf("seeded %d secrets in %s", n, time.Since(start).Round(time.Millisecond))
}

// midToken pages through in to the middle of its listing and returns the
// NextToken found there.
func midToken(b *testing.B, cl *secretsmanager.Client, in secretsmanager.ListSecretsInput, total int) *string {
	seen := 0
	for seen < total/2 {
		out, err := cl.ListSecrets(context.Background(), &in)
		if err != nil {
			b.Fatal(err)
		}
		seen += len(out.SecretList)
		if out.NextToken == nil {
			b.Fatalf("listing ended after %d of %d", seen, total)
		}
		in.NextToken = out.NextToken
	}
	return in.NextToken
}

func BenchmarkListSecrets(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			c := servertest.New(b, 3)
			seedDirect(b, c, n)
			cl := c.Client(c.Leader())
			filters := map[string][]types.Filter{
				"nofilter":        nil,
				"name-10pct":      {{Key: types.FilterNameStringTypeName, Values: []string{"ls-3-"}}},
				"all-words-10pct": {{Key: types.FilterNameStringTypeAll, Values: []string{"tenth"}}},
			}
			for _, fname := range []string{"nofilter", "name-10pct", "all-words-10pct"} {
				total := n
				if filters[fname] != nil {
					total = n / 10
				}
				in := secretsmanager.ListSecretsInput{MaxResults: aws.Int32(100), Filters: filters[fname]}
				mid := midToken(b, cl, in, total)
				for _, where := range []string{"first", "mid"} {
					b.Run(fname+"/"+where, func(b *testing.B) {
						req := in
						if where == "mid" {
							req.NextToken = mid
						}
						for b.Loop() {
							out, err := cl.ListSecrets(context.Background(), &req)
							if err != nil || len(out.SecretList) != 100 {
								b.Fatalf("%v: %d entries", err, len(out.SecretList))
							}
						}
						b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
					})
				}
			}
			// BatchGetSecretValue by a filter: 20 values (decrypted) per call.
			b.Run("BatchGetSecretValue/name-10pct/first20", func(b *testing.B) {
				in := &secretsmanager.BatchGetSecretValueInput{MaxResults: aws.Int32(20), Filters: filters["name-10pct"]}
				for b.Loop() {
					out, err := cl.BatchGetSecretValue(context.Background(), in)
					if err != nil || len(out.SecretValues) != 20 {
						b.Fatalf("%v: %d values", err, len(out.SecretValues))
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			})
		})
	}
}
