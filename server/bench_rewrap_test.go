package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server/servertest"
)

// The background re-wrap after a KEK rotation: 100,000 secret versions
// on the default key, the key rotated, and the time until the leader has
// re-wrapped every data key under the new version (RewrapPending 0), on a
// local region (no Raft: the cost of the scan, the unwrap and wrap, and
// the apply) and on a 3-node cluster (each batch of 256 a Raft entry,
// fsynced on a quorum). The secrets are written straight through the
// leader's region, not the API, to build the state quickly.
//
//	go test ./server -run '^$' -bench Rewrap -benchtime 1x
func BenchmarkRewrap(b *testing.B) {
	const secrets = 100_000
	b.Run("local-100k", func(b *testing.B) {
		l := servertest.NewLocal(b)
		benchRewrap(b, l.Region, secrets)
	})
	b.Run("3-node-100k", func(b *testing.B) {
		c := servertest.New(b, 3)
		benchRewrap(b, c.Nodes[c.Leader()].Region, secrets)
	})
}

func benchRewrap(b *testing.B, r *region.Region, secrets int) {
	ctx := context.Background()
	kr, err := r.Keyring()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < secrets; i += 64 {
				name := fmt.Sprintf("rewrap-%06d", i)
				arn := r.NewARN(name)
				nv, err := region.Seal(kr, kr.KEKID, arn, "v-"+name+"-0123456789abcdef0123456789", []byte("value "+name), false)
				if err == nil {
					_, _, err = r.Apply(ctx, fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: name, Version: &nv, Date: r.Now().UnixMilli()})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.Logf("wrote %d secrets in %v", secrets, time.Since(start).Round(time.Millisecond))
	for b.Loop() {
		begin := time.Now()
		if _, err := r.RotateKey(ctx, "default"); err != nil {
			b.Fatal(err)
		}
		for {
			info, err := r.DescribeKey(ctx, "default")
			if err != nil {
				b.Fatal(err)
			}
			if info.RewrapPending == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		took := time.Since(begin)
		b.ReportMetric(float64(secrets)/took.Seconds(), "datakeys/s")
		b.Logf("re-wrapped %d data keys in %v", secrets, took.Round(time.Millisecond))
	}
}
