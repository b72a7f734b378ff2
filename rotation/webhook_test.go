package rotation_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/rotation"
)

const signingID = "rotation/hook-signing-key"

// keyAPI answers GetSecretValue from a map of secret id to SecretString.
// A stand-in for Coffer's API is enough here: the webhook only ever reads
// its signing secret, and what it sends is checked on a real HTTPS server.
type keyAPI struct {
	mu      sync.Mutex
	secrets map[string]string
	reads   int
}

func (a *keyAPI) Call(_ context.Context, op string, in, out any) error {
	if op != "GetSecretValue" {
		return apierr.Newf(apierr.UnknownOperation, "keyAPI serves GetSecretValue only, not %s", op)
	}
	id, _ := in.(map[string]any)["SecretId"].(string)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reads++
	v, ok := a.secrets[id]
	if !ok {
		return apierr.New(apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	}
	// Through JSON, as the server's API answers.
	raw, _ := json.Marshal(map[string]any{"ARN": id, "Name": id, "SecretString": v, "VersionStages": []string{"AWSCURRENT"}})
	return json.Unmarshal(raw, out)
}

// received is one request a test hook got.
type received struct {
	header http.Header
	body   []byte
}

// hookServer is a real HTTPS server answering with handler after recording
// the request; the webhook trusts its certificate only.
func hookServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, *tls.Config, chan received) {
	t.Helper()
	got := make(chan received, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{r.Header.Clone(), body}
		if handler != nil {
			handler(w, r)
		}
	}))
	// Refused handshakes (an untrusted certificate, a timed-out client)
	// are what some tests are about, not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return srv, &tls.Config{RootCAs: roots}, got
}

func newKeyAPI(key string) *keyAPI {
	return &keyAPI{secrets: map[string]string{signingID: key}}
}

func TestWebhook_SignatureVerifies(t *testing.T) {
	const key = "whsec-0123456789abcdef"
	srv, tlsConf, got := hookServer(t, nil)
	api := newKeyAPI(key)
	w := &rotation.Webhook{URL: srv.URL + "/rotate", SigningSecretID: signingID, TLS: tlsConf}
	for _, step := range rotation.Steps {
		ev := testEvent
		ev.Step = step
		if err := w.Step(context.Background(), api, ev); err != nil {
			t.Fatalf("%s: Step: %v", step, err)
		}
		r := <-got
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		if h := r.header.Get(rotation.HeaderStep); h != step {
			t.Errorf("%s = %q, want %q", rotation.HeaderStep, h, step)
		}
		want, _ := json.Marshal(ev)
		if string(r.body) != string(want) {
			t.Errorf("body = %s, want %s", r.body, want)
		}
		ts, sig := r.header.Get(rotation.HeaderTimestamp), r.header.Get(rotation.HeaderSignature)
		if secs, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.Unix(secs, 0)).Abs() > time.Minute {
			t.Errorf("%s = %q, want the unix time now", rotation.HeaderTimestamp, ts)
		}
		if !strings.HasPrefix(sig, "v1=") || len(sig) != 3+64 {
			t.Errorf("%s = %q, want v1= and 64 hex digits", rotation.HeaderSignature, sig)
		}
		if err := rotation.VerifyWebhook([]byte(key), ts, sig, r.body, time.Now(), time.Minute); err != nil {
			t.Errorf("%s: VerifyWebhook: %v", step, err)
		}
		// A receiver verifies several values, one of them ours.
		if err := rotation.VerifyWebhook([]byte(key), ts, "v1=00, "+sig, r.body, time.Now(), 0); err != nil {
			t.Errorf("VerifyWebhook with two signatures: %v", err)
		}
		// Any change to what was signed breaks it.
		if err := rotation.VerifyWebhook([]byte(key), ts, sig, append(r.body, ' '), time.Now(), 0); err == nil {
			t.Error("VerifyWebhook accepted a changed body")
		}
		if err := rotation.VerifyWebhook([]byte(key), ts+"0", sig, r.body, time.Now(), 0); err == nil {
			t.Error("VerifyWebhook accepted a changed timestamp")
		}
	}
	// The key is read at every step, never kept.
	if api.reads != len(rotation.Steps) {
		t.Errorf("the signing secret was read %d times for %d steps", api.reads, len(rotation.Steps))
	}
}

func TestWebhook_WrongKeyFails(t *testing.T) {
	srv, tlsConf, got := hookServer(t, nil)
	w := &rotation.Webhook{URL: srv.URL, SigningSecretID: signingID, TLS: tlsConf}
	if err := w.Step(context.Background(), newKeyAPI("the-real-signing-key"), testEvent); err != nil {
		t.Fatal(err)
	}
	r := <-got
	err := rotation.VerifyWebhook([]byte("a-different-key-entirely"), r.header.Get(rotation.HeaderTimestamp), r.header.Get(rotation.HeaderSignature), r.body, time.Now(), 0)
	if err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("VerifyWebhook with the wrong key = %v, want a signature mismatch", err)
	}
}

func TestVerifyWebhook_StaleTimestamp(t *testing.T) {
	key := []byte("whsec-stale-test-key")
	// A request signed by the webhook itself, verified at later times.
	srv, tlsConf, got := hookServer(t, nil)
	w := &rotation.Webhook{URL: srv.URL, SigningSecretID: signingID, TLS: tlsConf}
	if err := w.Step(context.Background(), newKeyAPI(string(key)), testEvent); err != nil {
		t.Fatal(err)
	}
	r := <-got
	ts, sig, body := r.header.Get(rotation.HeaderTimestamp), r.header.Get(rotation.HeaderSignature), r.body
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Unix(secs, 0)

	for _, c := range []struct {
		now  time.Time
		ok   bool
		name string
	}{
		{sent.Add(4 * time.Minute), true, "4 minutes old"},
		{sent.Add(6 * time.Minute), false, "6 minutes old"},
		{sent.Add(-6 * time.Minute), false, "6 minutes in the future"},
		{sent.Add(time.Hour), false, "an hour old"},
	} {
		err := rotation.VerifyWebhook(key, ts, sig, body, c.now, 5*time.Minute)
		if c.ok && err != nil {
			t.Errorf("%s: refused: %v", c.name, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "replay")) {
			t.Errorf("%s: VerifyWebhook = %v, want a refusal as a replay", c.name, err)
		}
	}
	if err := rotation.VerifyWebhook(key, "yesterday", sig, body, sent, 0); err == nil {
		t.Error("VerifyWebhook accepted a timestamp that is not a number")
	}
}

func TestWebhook_Non2xx(t *testing.T) {
	const key = "whsec-non-2xx-signing-key"
	srv, tlsConf, got := hookServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		// A receiver that echoes what it got, then a long page.
		fmt.Fprintf(w, "db unreachable; got signature %s ts %s ", r.Header.Get(rotation.HeaderSignature), r.Header.Get(rotation.HeaderTimestamp))
		io.WriteString(w, strings.Repeat("x", 4000)+"END-OF-PAGE")
	})
	w := &rotation.Webhook{URL: srv.URL, SigningSecretID: signingID, TLS: tlsConf}
	err := w.Step(context.Background(), newKeyAPI(key), testEvent)
	sig := (<-got).header.Get(rotation.HeaderSignature)
	if err == nil {
		t.Fatal("Step succeeded on a 503")
	}
	msg := err.Error()
	for _, want := range []string{rotation.StepCreate, "503", "db unreachable"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "END-OF-PAGE") || len(msg) > 800 {
		t.Errorf("error is %d bytes, want only the first ~512 bytes of the body: %q", len(msg), msg)
	}
	if strings.Contains(msg, sig) || strings.Contains(msg, strings.TrimPrefix(sig, "v1=")) || strings.Contains(msg, key) {
		t.Errorf("error %q carries the signature or the key", msg)
	}
}

func TestWebhook_Timeout(t *testing.T) {
	release := make(chan struct{})
	srv, tlsConf, _ := hookServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release) // before srv.Close, which waits for the handler
	w := &rotation.Webhook{URL: srv.URL, SigningSecretID: signingID, TLS: tlsConf, Timeout: 300 * time.Millisecond}
	start := time.Now()
	err := w.Step(context.Background(), newKeyAPI("whsec-timeout-key"), testEvent)
	if err == nil {
		t.Fatal("Step succeeded against a hook that never answers")
	}
	if !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Errorf("error %q does not say it timed out", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Step took %v with a 300ms timeout", d)
	}
}

func TestWebhook_HTTPRefusedUnlessAllowed(t *testing.T) {
	hits := 0
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	defer srv.Close()
	api := newKeyAPI("whsec-http-key")

	w := &rotation.Webhook{URL: srv.URL, SigningSecretID: signingID}
	err := w.Step(context.Background(), api, testEvent)
	if err == nil || !strings.Contains(err.Error(), "http://") {
		t.Fatalf("Step over http:// = %v, want a refusal", err)
	}
	mu.Lock()
	if hits != 0 || api.reads != 0 {
		t.Errorf("a refused http:// hook was called (%d) or its key read (%d)", hits, api.reads)
	}
	mu.Unlock()

	w.AllowHTTP = true
	if err := w.Step(context.Background(), api, testEvent); err != nil {
		t.Fatalf("Step over http:// with AllowHTTP: %v", err)
	}
	mu.Lock()
	if hits != 1 {
		t.Errorf("hook called %d times, want 1", hits)
	}
	mu.Unlock()

	for _, u := range []string{"ftp://example.com/hook", "https:///nohost", "://bad"} {
		w := &rotation.Webhook{URL: u, SigningSecretID: signingID, AllowHTTP: true}
		if err := w.Step(context.Background(), api, testEvent); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}

func TestWebhook_RedirectNotFollowed(t *testing.T) {
	var mu sync.Mutex
	followed := 0
	srv, tlsConf, _ := hookServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			mu.Lock()
			followed++
			mu.Unlock()
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	w := &rotation.Webhook{URL: srv.URL + "/rotate", SigningSecretID: signingID, TLS: tlsConf}
	err := w.Step(context.Background(), newKeyAPI("whsec-redirect-key"), testEvent)
	if err == nil || !strings.Contains(err.Error(), "307") || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("Step = %v, want a 307 refused as a redirect", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if followed != 0 {
		t.Errorf("the redirect was followed %d times", followed)
	}
}

func TestWebhook_SigningSecretMissing(t *testing.T) {
	srv, tlsConf, got := hookServer(t, nil)
	w := &rotation.Webhook{URL: srv.URL, SigningSecretID: "no/such/secret", TLS: tlsConf}
	err := w.Step(context.Background(), newKeyAPI("whsec-unused"), testEvent)
	if !apierr.Is(err, apierr.ResourceNotFound) {
		t.Fatalf("Step = %v, want the ResourceNotFoundException of the key's read", err)
	}
	if !strings.Contains(err.Error(), "no/such/secret") {
		t.Errorf("error %q does not name the signing secret", err)
	}
	select {
	case <-got:
		t.Error("an unsigned request was sent")
	default:
	}
}

func TestWebhook_UntrustedCertificate(t *testing.T) {
	srv, _, got := hookServer(t, nil)
	// nil TLS: the system roots, which do not include httptest's CA.
	w := &rotation.Webhook{URL: srv.URL, SigningSecretID: signingID}
	if err := w.Step(context.Background(), newKeyAPI("whsec-tls-key"), testEvent); err == nil {
		t.Fatal("Step trusted httptest's self-signed certificate with the system roots")
	}
	select {
	case <-got:
		t.Error("the event reached an untrusted server")
	default:
	}
}
