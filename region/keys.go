package region

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Access keys a node does not find in its state. SigV4 verification looks
// a key up on every request; a key missing locally may be one this node
// has not applied yet, so a follower catches up with the leader (a read
// index) before refusing it. That must not let requests with random key
// ids turn into leader round trips, so:
//
//   - catch-ups are serialized per node: misses that arrive while one is
//     under way wait for the next, which covers all of them (a read index
//     brings the whole state up to date, whatever key each miss was for);
//     at most one is in flight, whatever the rate of unknown keys;
//   - an id still unknown after a catch-up is not caught up for again for
//     keyMissWindow;
//   - each request waits no longer than its own context allows.

const (
	// keyMissWindow is how long an id found unknown after a catch-up is
	// refused from local state alone.
	keyMissWindow = time.Minute
	// keyMissLimit bounds the remembered misses; when full, the memory is
	// cleared (at worst one more catch-up per id).
	keyMissLimit = 10000
	// keyCatchUpTimeout bounds one catch-up round.
	keyCatchUpTimeout = 2 * time.Second
)

type keyCatchUp struct {
	mu      sync.Mutex
	misses  map[string]time.Time
	next    *catchUpRound // the round misses arriving now join
	running bool
	// rounds counts the catch-ups sent (tests).
	rounds atomic.Int64
}

type catchUpRound struct {
	done chan struct{}
	err  error
}

// shouldCatchUp: id was not found unknown after a catch-up in the last
// keyMissWindow.
func (k *keyCatchUp) shouldCatchUp(id string, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	at, ok := k.misses[id]
	return !ok || now.Sub(at) >= keyMissWindow || now.Before(at)
}

// missed remembers that id was unknown after a catch-up.
func (k *keyCatchUp) missed(id string, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.misses == nil || len(k.misses) >= keyMissLimit {
		k.misses = map[string]time.Time{}
	}
	k.misses[id] = now
}

// catchUp waits for a catch-up round that starts after it was called
// (so it covers everything acknowledged before), running readIndex under
// bg; it returns early, with ctx's error, when ctx ends.
func (k *keyCatchUp) catchUp(ctx, bg context.Context, readIndex func(context.Context) (uint64, error)) error {
	k.mu.Lock()
	if k.next == nil {
		k.next = &catchUpRound{done: make(chan struct{})}
	}
	round := k.next
	if !k.running {
		k.running = true
		go k.run(bg, readIndex)
	}
	k.mu.Unlock()
	select {
	case <-round.done:
		return round.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (k *keyCatchUp) run(bg context.Context, readIndex func(context.Context) (uint64, error)) {
	for {
		k.mu.Lock()
		round := k.next
		k.next = nil
		if round == nil {
			k.running = false
			k.mu.Unlock()
			return
		}
		k.mu.Unlock()
		k.rounds.Add(1)
		ctx, cancel := context.WithTimeout(bg, keyCatchUpTimeout)
		_, round.err = readIndex(ctx)
		cancel()
		close(round.done)
	}
}

// KeyCatchUps is how many times this node caught up with the leader for
// an access key it did not have (for tests and metrics).
func (r *Region) KeyCatchUps() int64 { return r.keys.rounds.Load() }
