package main

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server/servertest"
)

// Time from starting the `coffer dev` process to the first signed request
// that succeeds (ListSecrets in every hosted region), polling every 2 ms as
// a suite's setup would. Each run is a new process on a new temporary data
// directory; stopping it is not timed. Numbers are in docs/performance.md
// ("coffer dev"); run with
//
//	go test -run '^$' -bench BenchmarkDevStartToFirstRequest -benchtime 20x ./cmd/coffer/
func BenchmarkDevStartToFirstRequest(b *testing.B) {
	for _, regions := range []string{"us-east-1", "us-east-1,us-west-2,us-east-2"} {
		b.Run(fmt.Sprintf("regions=%d", strings.Count(regions, ",")+1), func(b *testing.B) {
			benchDevStart(b, strings.Split(regions, ","))
		})
	}
}

func benchDevStart(b *testing.B, regions []string) {
	bin := cofferBinary(b)
	creds := region.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}
	var runs []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		apiAddr := freeAddr(b)
		tmp := b.TempDir()
		cmd := exec.Command(bin, "dev", "--api-addr", apiAddr, "--regions", strings.Join(regions, ","))
		cmd.Env = append(childEnv("TMPDIR="+tmp), envDevAccessKeyID+"="+creds.AccessKeyID, envDevSecretAccessKey+"="+creds.SecretAccessKey)
		var clients []*secretsmanager.Client
		for _, r := range regions {
			clients = append(clients, servertest.NewClient("http://"+apiAddr, r, creds, 0))
		}
		b.StartTimer()
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for _, cl := range clients {
			for {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := cl.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
				cancel()
				if err == nil {
					break
				}
				if code, _ := errCode(err); code != "" {
					b.Fatalf("ListSecrets during startup answered %v", err)
				}
				if time.Since(start) > 60*time.Second {
					b.Fatalf("no answer 60s after start: %v", err)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		runs = append(runs, time.Since(start))
		b.StopTimer()
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				b.Fatalf("coffer dev after SIGINT: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			b.Fatal("coffer dev did not stop within 30s of SIGINT")
		}
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(runs)
	b.ReportMetric(float64(runs[len(runs)/2].Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(runs[0].Microseconds())/1000, "ms-min")
	b.ReportMetric(float64(runs[len(runs)-1].Microseconds())/1000, "ms-max")
}
