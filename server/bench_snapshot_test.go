package server_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/server/servertest"
)

// Save and restore of a region of 10,000 secrets of 1 KiB through a
// 3-node cluster: save on a follower (it catches up, snapshots its state,
// sends the file), restore through the other follower (checked there,
// sent to the leader, raft.Restore, a no-op committed once the followers
// have loaded it). Numbers are in docs/performance.md ("Snapshots"):
//
//	go test -run '^$' -bench 'Snapshot_SaveRestore' -benchtime 5x -timeout 30m ./server/
func BenchmarkSnapshot_SaveRestore(b *testing.B) {
	const secrets = 10000
	c := servertest.New(b, 3)
	seedDirectValue(b, c, secrets, bytes.Repeat([]byte("x"), 1024))
	f := c.Followers()
	var save, restore time.Duration
	var size int
	for b.Loop() {
		start := time.Now()
		file := saveSnapshot(b, c.Nodes[f[0]].Endpoint, c.Name)
		save += time.Since(start)
		size = len(file)
		start = time.Now()
		status, code, msg, out := restoreSnapshot(b, c.Nodes[f[1]].Endpoint, c.Name, file, nil)
		restore += time.Since(start)
		if status != http.StatusOK || out.State.Records["secrets"] != secrets {
			b.Fatalf("restore: %d %s %s (%d secrets)", status, code, msg, out.State.Records["secrets"])
		}
	}
	b.StopTimer()
	for i := range c.Nodes {
		out, err := c.Client(i).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("ls-7-009997")})
		if err != nil || len(aws.ToString(out.SecretString)) != 1024 {
			b.Fatalf("node %d after the restores: %v", i, err)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(save.Milliseconds())/n, "save-ms")
	b.ReportMetric(float64(restore.Milliseconds())/n, "restore-ms")
	b.ReportMetric(float64(size)/(1<<20), "file-MiB")
	b.ReportMetric(0, "ns/op")
}
