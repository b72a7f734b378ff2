package server_test

import (
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server/servertest"
)

// The leader's purge loop and the LastAccessedDate batches, through a
// 3-node cluster.

// expireNow schedules a secret for deletion with a recovery window that
// ended an hour ago. The API refuses windows under 7 days (and that stays
// so), so the test writes the DeleteSecret command a request eight days
// ago would have produced, through Raft from a follower.
func expireNow(t *testing.T, c *servertest.Cluster, arn string) {
	t.Helper()
	now := time.Now()
	buf, err := fsm.Encode(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn,
		DeletionDate: now.Add(-time.Hour).UnixMilli(), Date: now.Add(-7*24*time.Hour - time.Hour).UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Nodes[c.Followers()[0]].Region.Node().Apply(ctxT(t), buf); err != nil {
		t.Fatalf("schedule %s in the past: %v", arn, err)
	}
}

// goneEverywhere waits until no running node's state has the secret.
func goneEverywhere(t *testing.T, c *servertest.Cluster, arn string) {
	t.Helper()
	c.Eventually(15*time.Second, "the purge of "+arn+" on every node", func() bool {
		for _, i := range c.Running() {
			txn, _ := c.Nodes[i].Region.FSM().ReadTxn()
			if fsm.SecretByARN(txn, arn) != nil {
				return false
			}
		}
		return true
	})
}

func TestAPI_PurgeAfterRecoveryWindow(t *testing.T) {
	c, a := newOpsEnv(t, servertest.Options{TuneRegion: func(rc *region.Config) { rc.PurgeInterval = 100 * time.Millisecond }})
	ctx := ctxT(t)
	due := mkSecret(t, a, "purge-due", "v")
	mkSecret(t, a, "purge-kept", "v")
	scheduleDeletion(t, a, "purge-kept") // 30-day window: stays
	mkSecret(t, a, "purge-active", "v")

	expireNow(t, c, aws.ToString(due.ARN))
	goneEverywhere(t, c, aws.ToString(due.ARN))
	for _, id := range []string{"purge-due", aws.ToString(due.ARN)} {
		_, err := a.any().DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
		wantAPIError(t, "describe a purged secret", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		_, err = a.any().RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(id)})
		wantAPIError(t, "restore a purged secret", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	}
	if d := describeOn(t, a, "purge-kept"); d.DeletedDate == nil {
		t.Fatal("the secret still in its window lost its DeletedDate")
	}
	describeOn(t, a, "purge-active")
	// The name is free again, and the new secret gets a new ARN.
	again := mkSecret(t, a, "purge-due", "new")
	if aws.ToString(again.ARN) == aws.ToString(due.ARN) {
		t.Fatal("re-created with the purged secret's ARN")
	}

	t.Run("a new leader takes the loop over", func(t *testing.T) {
		old := c.Leader()
		c.Kill(old)
		c.WaitServing()
		if c.Leader() == old {
			t.Fatal("no new leader")
		}
		second, err := c.Client(c.Leader()).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("purge-after-failover")})
		if err != nil {
			t.Fatal(err)
		}
		expireNow(t, c, aws.ToString(second.ARN))
		goneEverywhere(t, c, aws.ToString(second.ARN))
	})
}

// today is midnight UTC; a check that straddles midnight accepts both days.
func isToday(got *time.Time, before, after time.Time) bool {
	if got == nil {
		return false
	}
	day := func(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }
	return got.Equal(day(before)) || got.Equal(day(after))
}

// LastAccessedDate is visible on every node as soon as the read that set
// it returns, as in AWS, and costs one log entry per version per day, not
// one per read (access.go).
func TestAPI_LastAccessedDate(t *testing.T) {
	// The flusher only carries stale reads and failed recordings; an hour
	// keeps it out of the way, so what is seen here is the recording.
	c, a := newOpsEnv(t, servertest.Options{TuneRegion: func(rc *region.Config) { rc.AccessFlushInterval = time.Hour }})
	ctx := ctxT(t)
	start := time.Now()
	created := mkSecret(t, a, "la", "one")
	v1, v2 := versionToken("la", "v1"), versionToken("la", "v2")
	if _, err := a.any().PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("la"),
		ClientRequestToken: aws.String(v2), SecretString: aws.String("two")}); err != nil {
		t.Fatal(err)
	}
	mkSecret(t, a, "la-batch", "b")
	mkSecret(t, a, "la-unread", "u")
	mkSecret(t, a, "la-stale", "s")
	if d := describeOn(t, a, "la"); d.LastAccessedDate != nil {
		t.Fatalf("LastAccessedDate %v before any read", d.LastAccessedDate)
	}
	leaderIndex := func() uint64 { return c.Nodes[c.Leader()].Region.FSM().AppliedIndex() }
	// describeAt asks node i (a linearizable read).
	describeAt := func(t *testing.T, i int, id string) *secretsmanager.DescribeSecretOutput {
		t.Helper()
		d, err := c.Client(i).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	// A read on one node, then every node shows the date at once.
	f := c.Followers()[0]
	if _, err := c.Client(f).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("la")}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	for _, i := range c.Running() {
		if d := describeAt(t, i, "la"); !isToday(d.LastAccessedDate, start, after) {
			t.Fatalf("node %d right after the read: LastAccessedDate %v, want midnight UTC of today", i, d.LastAccessedDate)
		}
	}
	l, err := a.any().ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range l.SecretList {
		if aws.ToString(e.Name) == "la" && !isToday(e.LastAccessedDate, start, after) {
			t.Fatalf("ListSecrets LastAccessedDate %v", e.LastAccessedDate)
		}
	}
	// Per version: only the one read (AWSCURRENT, v2) so far, then v1 too.
	versionDates := func(t *testing.T) map[string]bool {
		t.Helper()
		out, err := a.any().ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("la")})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, e := range out.Versions {
			if e.LastAccessedDate != nil && !isToday(e.LastAccessedDate, start, time.Now()) {
				t.Fatalf("version %s: LastAccessedDate %v", aws.ToString(e.VersionId), e.LastAccessedDate)
			}
			got[aws.ToString(e.VersionId)] = e.LastAccessedDate != nil
		}
		return got
	}
	if got := versionDates(t); !got[v2] || got[v1] {
		t.Fatalf("versions marked %v, want only %s", got, v2)
	}
	valueOf(t, a, &secretsmanager.GetSecretValueInput{SecretId: created.ARN, VersionStage: aws.String("AWSPREVIOUS")})
	if got := versionDates(t); !got[v2] || !got[v1] {
		t.Fatalf("versions marked %v after reading AWSPREVIOUS", got)
	}
	// BatchGetSecretValue records its reads the same way.
	if _, err := a.any().BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"la-batch", "la"}}); err != nil {
		t.Fatal(err)
	}
	if d := describeOn(t, a, "la-batch"); !isToday(d.LastAccessedDate, start, time.Now()) {
		t.Fatalf("la-batch: LastAccessedDate %v right after BatchGetSecretValue", d.LastAccessedDate)
	}
	if d := describeOn(t, a, "la-unread"); d.LastAccessedDate != nil {
		t.Fatalf("an unread secret has LastAccessedDate %v", d.LastAccessedDate)
	}

	t.Run("once marked today, reads write nothing", func(t *testing.T) {
		idle := leaderIndex()
		for range 30 {
			valueOf(t, a, &secretsmanager.GetSecretValueInput{SecretId: aws.String("la")})
		}
		if _, err := a.any().BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"la-batch", "la"}}); err != nil {
			t.Fatal(err)
		}
		for _, n := range c.Nodes {
			if err := n.Region.FlushAccess(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if grew := leaderIndex() - idle; grew != 0 {
			t.Fatalf("the log grew by %d entries for reads of secrets already marked today", grew)
		}
	})

	t.Run("concurrent first reads share one write", func(t *testing.T) {
		mkSecret(t, a, "la-burst", "x")
		before := leaderIndex()
		var wg sync.WaitGroup
		for i := range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := c.Client(c.Running()[i%len(c.Running())])
				if _, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("la-burst")}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		// One recording per node at most (each node shares its own).
		if grew := leaderIndex() - before; grew < 1 || grew > uint64(len(c.Running())) {
			t.Fatalf("the log grew by %d entries for 24 concurrent first reads on %d nodes", grew, len(c.Running()))
		}
	})

	t.Run("stale reads are sent by the flusher", func(t *testing.T) {
		i := c.Followers()[0]
		if _, err := c.Client(i).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("la-stale")},
			withHeader("X-Coffer-Consistency", "stale")); err != nil {
			t.Fatal(err)
		}
		if err := c.Nodes[i].Region.FlushAccess(ctx); err != nil {
			t.Fatal(err)
		}
		// The flush is applied before it returns: a linearizable read sees it.
		if d := describeOn(t, a, "la-stale"); !isToday(d.LastAccessedDate, start, time.Now()) {
			t.Fatalf("LastAccessedDate %v right after FlushAccess", d.LastAccessedDate)
		}
	})
}
