package rotation

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The headers of a webhook request.
const (
	HeaderStep      = "X-Coffer-Rotation-Step"
	HeaderTimestamp = "X-Coffer-Timestamp"
	HeaderSignature = "X-Coffer-Signature"
)

// responseSnippet is how much of a refusing receiver's body an error
// carries: enough for its reason, not a whole error page.
const responseSnippet = 512

// DefaultWebhookMaxAge is the age VerifyWebhook accepts when given none:
// Stripe's tolerance, long enough for clock skew and a retry, short enough
// that a captured request soon stops being replayable.
const DefaultWebhookMaxAge = 5 * time.Minute

// Webhook POSTs the event JSON to URL once per step.
//
// The request is signed as Stripe signs its webhooks: X-Coffer-Timestamp
// is the time in unix seconds and X-Coffer-Signature is
// "v1=" + hex(HMAC-SHA256(key, timestamp + "." + body)), so the receiver
// can check both who sent it and that it is fresh (VerifyWebhook). The key
// is the AWSCURRENT SecretString of the Coffer secret SigningSecretID, read
// at every step: Coffer's configuration holds no key, and rotating that
// secret changes the key without a restart.
//
// The receiver calls back into Coffer with credentials of its own, as a
// rotation Lambda does; API is used only to read the signing key.
type Webhook struct {
	URL             string        // https:// (http:// only when AllowHTTP, for dev/tests on loopback)
	SigningSecretID string        // ARN or name of a Coffer secret whose AWSCURRENT SecretString is the HMAC key
	Timeout         time.Duration // DefaultHookTimeout if zero
	TLS             *tls.Config   // nil: system roots
	AllowHTTP       bool
}

// Step POSTs ev to the hook. A 2xx answer is success; anything else, a
// redirect included, is an error.
func (w *Webhook) Step(ctx context.Context, api API, ev Event) error {
	u, err := url.Parse(w.URL)
	if err != nil {
		// url.Parse's error quotes the URL, which may carry a password.
		return fmt.Errorf("rotation: webhook %s: the URL does not parse", ev.Step)
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("rotation: webhook %s: %s: the URL has no host", ev.Step, u.Redacted())
	case u.Scheme == "https":
	case u.Scheme == "http" && w.AllowHTTP:
	case u.Scheme == "http":
		// The event names the secret and the version being created: not
		// for anyone on the path to read or forge answers to.
		return fmt.Errorf("rotation: webhook %s: %s: http:// is refused (use https://, or allow http for development)", ev.Step, u.Redacted())
	default:
		return fmt.Errorf("rotation: webhook %s: %s: the URL must be https://", ev.Step, u.Redacted())
	}
	if w.SigningSecretID == "" {
		return fmt.Errorf("rotation: webhook %s: no signing secret configured", ev.Step)
	}

	var out struct{ SecretString *string }
	if err := api.Call(ctx, "GetSecretValue", map[string]any{"SecretId": w.SigningSecretID}, &out); err != nil {
		return fmt.Errorf("rotation: webhook %s: reading the signing key from secret %q: %w", ev.Step, w.SigningSecretID, err)
	}
	if out.SecretString == nil || *out.SecretString == "" {
		return fmt.Errorf("rotation: webhook %s: the signing secret %q has no SecretString", ev.Step, w.SigningSecretID)
	}
	key := []byte(*out.SecretString)

	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("rotation: webhook %s: %w", ev.Step, err)
	}
	timestamp := strconv.FormatInt(time.Now().Unix(), 10)
	sig := signWebhook(key, timestamp, body)

	timeout := w.Timeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errHookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("rotation: webhook %s: %s: %w", ev.Step, u.Redacted(), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderStep, ev.Step)
	req.Header.Set(HeaderTimestamp, timestamp)
	req.Header.Set(HeaderSignature, sig)

	// A transport per step: TLS is per hook, and steps are minutes apart,
	// so there is no connection worth keeping.
	tr := &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		TLSClientConfig:   w.TLS.Clone(),
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		// A redirect would send the signed event somewhere nobody
		// configured; the receiver must be named as it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err == nil && ctx.Err() != nil {
		// An answer can race the cancellation (the receiver saw the
		// connection close and returned): past the deadline it is a
		// timeout, whatever it says. A step is idempotent, so a retry of
		// a step that did succeed is harmless.
		resp.Body.Close()
		err = ctx.Err()
	}
	if err != nil {
		if context.Cause(ctx) == errHookTimeout {
			return fmt.Errorf("rotation: webhook %s: POST %s: timed out after %v", ev.Step, u.Redacted(), timeout)
		}
		// *url.Error: the method, the URL without its password, the cause.
		return fmt.Errorf("rotation: webhook %s: %w", ev.Step, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		// Read a little so that a short answer completes cleanly.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, responseSnippet))
	text := strings.TrimSpace(strings.ToValidUTF8(string(snippet), ""))
	// A receiver that echoes the request back must not put the signature,
	// or the key if it somehow has it, into our logs.
	text = strings.ReplaceAll(text, sig, "[signature]")
	text = strings.ReplaceAll(text, strings.TrimPrefix(sig, "v1="), "[signature]")
	if len(key) >= 8 { // a shorter string turns up by chance
		text = strings.ReplaceAll(text, string(key), "[key]")
	}
	msg := fmt.Sprintf("rotation: webhook %s: POST %s: %s", ev.Step, u.Redacted(), resp.Status)
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		msg += " (redirects are not followed)"
	}
	if text != "" {
		msg += ": " + text
	}
	return errors.New(msg)
}

// signWebhook is the X-Coffer-Signature of body sent at timestamp.
func signWebhook(key []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifyWebhook checks a webhook request as its receiver gets it: timestamp
// and signature are the X-Coffer-Timestamp and X-Coffer-Signature headers,
// body the request body exactly as received (not re-encoded), now the
// receiver's clock. It fails unless the signature is the HMAC of timestamp
// and body under key and the timestamp is within maxAge of now (either
// way, for clock skew); maxAge <= 0 means DefaultWebhookMaxAge.
//
// The signature header may hold several comma-separated "v1=" values; one
// matching is enough (a sender changing keys can sign with both).
func VerifyWebhook(key []byte, timestamp, signature string, body []byte, now time.Time, maxAge time.Duration) error {
	if maxAge <= 0 {
		maxAge = DefaultWebhookMaxAge
	}
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("webhook: the timestamp is not a number of unix seconds")
	}
	want := signWebhook(key, timestamp, body)
	ok := false
	for _, v := range strings.Split(signature, ",") {
		// hmac.Equal: the comparison takes the same time wherever the
		// first difference is.
		if hmac.Equal([]byte(strings.TrimSpace(v)), []byte(want)) {
			ok = true
		}
	}
	if !ok {
		return errors.New("webhook: the signature does not match")
	}
	// Checked after the signature so that only an authentic request
	// learns that it is merely late; the signed timestamp cannot have
	// been altered.
	age := now.Sub(time.Unix(secs, 0))
	if age > maxAge || age < -maxAge {
		return fmt.Errorf("webhook: the timestamp is %v from now, more than %v: refused as a possible replay", age.Round(time.Second), maxAge)
	}
	return nil
}
