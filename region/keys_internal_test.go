package region

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// Misses that arrive while a catch-up is under way share the next one: at
// most one is in flight, whatever the rate of unknown keys.
func TestKeyCatchUp_MissesShareOneRound(t *testing.T) {
	var k keyCatchUp
	release := make(chan struct{})
	calls := 0
	var mu sync.Mutex
	readIndex := func(ctx context.Context) (uint64, error) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			<-release
		}
		return 1, nil
	}
	bg := context.Background()
	firstDone := make(chan error, 1)
	go func() { firstDone <- k.catchUp(bg, bg, readIndex) }()
	for k.rounds.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := k.catchUp(bg, bg, readIndex); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // let all 50 join the next round
	close(release)
	wg.Wait()
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	if got := k.rounds.Load(); got != 2 {
		t.Fatalf("%d rounds for 51 misses, want 2 (the one running and one shared)", got)
	}
}

// A caller waits no longer than its context, and a failed round is
// reported to the callers it covered.
func TestKeyCatchUp_ContextAndErrors(t *testing.T) {
	var k keyCatchUp
	block := make(chan struct{})
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := k.catchUp(ctx, context.Background(), func(context.Context) (uint64, error) { <-block; return 0, nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the caller's deadline", err)
	}

	var k2 keyCatchUp
	boom := errors.New("no leader")
	if err := k2.catchUp(context.Background(), context.Background(), func(context.Context) (uint64, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

// An id found unknown after a catch-up is not caught up for again within
// the window.
func TestKeyCatchUp_MissWindow(t *testing.T) {
	var k keyCatchUp
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if !k.shouldCatchUp("AKIAX", now) {
		t.Fatal("a new id is not caught up for")
	}
	k.missed("AKIAX", now)
	if k.shouldCatchUp("AKIAX", now.Add(keyMissWindow/2)) {
		t.Fatal("caught up again inside the window")
	}
	if !k.shouldCatchUp("AKIAX", now.Add(keyMissWindow)) || !k.shouldCatchUp("AKIAY", now) {
		t.Fatal("window or other id")
	}
	for i := range keyMissLimit + 1 {
		k.missed(string(rune(i)), now)
	}
	if len(k.misses) > keyMissLimit {
		t.Fatalf("%d misses remembered", len(k.misses))
	}
}
