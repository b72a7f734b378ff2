package server_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/fsm"
)

// BenchmarkRotation_Scheduler measures how many rotations one leader's
// scheduler finishes per second on a 3-node region: b.N secrets are
// created and rotated at once (RotateSecret through the SDK, 16 at a
// time), with a rotator that does the API work of a real one (read the
// current value, put the pending one, move AWSCURRENT) and no external
// system. Each rotation is seven Raft entries: the start, the pending
// value, three steps recorded, the label move, the finish.
//
//	go test -run - -bench Rotation_Scheduler -benchtime 2000x ./server
func BenchmarkRotation_Scheduler(b *testing.B) {
	rot := newCounterRotator()
	c := rotationCluster(b, rot, nil)
	cl := c.Client(c.Followers()[0])
	ctx := b.Context()
	names := make([]string, b.N)
	for i := range names {
		names[i] = fmt.Sprintf("bench/rot/%06d", i)
		if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(names[i]), SecretString: aws.String("v")}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := cl.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(name),
				ClientRequestToken: aws.String(fmt.Sprintf("%08d-0000-4000-8000-%012d", i, i)), RotationLambdaARN: aws.String("counter")}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	requested := time.Since(start)
	leader := c.Nodes[c.Leader()].Region
	for {
		txn, _, err := leader.Read(ctx, true)
		if err != nil {
			b.Fatal(err)
		}
		secrets, _ := fsm.RotatingSecrets(txn)
		if len(secrets) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rotations/s")
	b.ReportMetric(requested.Seconds(), "s-to-request")
}
