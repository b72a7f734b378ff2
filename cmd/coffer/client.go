package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/spf13/cobra"
)

// The client side of the operator commands: they talk to one node's API
// port over HTTP(S). Calls that need an identity are signed with SigV4
// (signing name "coffer") with the caller's AWS credentials from the
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).

type clientFlags struct {
	endpoint, caFile, region, format string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint", "https://127.0.0.1:8201", "API address of the node to talk to (COFFER_ENDPOINT)")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM CA bundle that signed the node's API certificate (default: the system's roots)")
	fl.StringVar(&f.region, "region", "", "region to address when the node hosts several (for signed calls: default AWS_REGION or AWS_DEFAULT_REGION)")
	fl.StringVar(&f.format, "format", "table", "output format: table or json")
}

type adminClient struct {
	base   *url.URL
	http   *http.Client
	region string
}

func (f *clientFlags) client() (*adminClient, error) {
	if f.format != "table" && f.format != "json" {
		return nil, fmt.Errorf("--format must be table or json, got %q", f.format)
	}
	u, err := url.Parse(f.endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--endpoint must be an http:// or https:// URL, got %q", f.endpoint)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", f.caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &adminClient{base: u, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}, region: f.region}, nil
}

// call sends method path (which may carry a query) with a JSON body (nil:
// none) and decodes the JSON answer into out; signed calls carry SigV4.
// A non-2xx answer is an error with the server's message.
func (c *adminClient) call(ctx context.Context, method, path string, in, out any, signed bool) error {
	resp, err := c.send(ctx, method, path, in, signed)
	if err != nil {
		return err
	}
	return decodeAnswer(resp, out)
}

// decodeAnswer reads a JSON answer into out (nil: discard it) and closes
// its body.
func decodeAnswer(resp *http.Response, out any) error {
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// download is call for an answer that is not JSON (a snapshot file): it
// copies the body to w.
func (c *adminClient) download(ctx context.Context, path string, w io.Writer, signed bool) error {
	resp, err := c.send(ctx, "GET", path, nil, signed)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// upload posts the file at path as a streamed body, signed with its
// SHA-256 (computed first: the signature covers the body, which is never
// held in memory whole), and decodes the JSON answer into out.
func (c *adminClient) upload(ctx context.Context, path, file string, out any) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return err
	}
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), f)
	if err != nil {
		return err
	}
	req.ContentLength = size
	sum := hex.EncodeToString(h.Sum(nil))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Amz-Content-Sha256", sum)
	if err := c.signHash(ctx, req, sum); err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	return decodeAnswer(resp, out)
}

// send makes the request; a non-2xx answer is an error with the
// server's message, and its body is closed.
func (c *adminClient) send(ctx context.Context, method, path string, in any, signed bool) (*http.Response, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return nil, err
		}
	}
	u := *c.base
	p, query, _ := strings.Cut(path, "?")
	u.Path = strings.TrimSuffix(u.Path, "/") + p
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("bad query in %s: %w", path, err)
	}
	if c.region != "" && !signed {
		q.Set("region", c.region)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if signed {
		if err := c.sign(ctx, req, body); err != nil {
			return nil, err
		}
	}
	return c.do(req)
}

// do sends req; a non-2xx answer is an error with the server's message,
// and its body is closed.
func (c *adminClient) do(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Type    string `json:"__type"`
		Message string
	}
	if json.Unmarshal(raw, &e) == nil && e.Message != "" {
		return nil, fmt.Errorf("%s: %s", e.Type, e.Message)
	}
	return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(raw)))
}

func (c *adminClient) sign(ctx context.Context, req *http.Request, body []byte) error {
	sum := sha256.Sum256(body)
	return c.signHash(ctx, req, hex.EncodeToString(sum[:]))
}

// signHash signs req whose body has the hex SHA-256 payloadHash.
func (c *adminClient) signHash(ctx context.Context, req *http.Request, payloadHash string) error {
	creds := aws.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"), SessionToken: os.Getenv("AWS_SESSION_TOKEN")}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return errors.New("this command is signed with the root identity's or an allowed user's credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	region := c.region
	for _, env := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if region == "" {
			region = os.Getenv(env)
		}
	}
	if region == "" {
		return errors.New("name the region with --region (or AWS_REGION)")
	}
	return v4.NewSigner().SignHTTP(ctx, creds, req, payloadHash, "coffer", region, time.Now())
}

// newTable aligns "name\tvalue" lines.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// printJSON writes v indented.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
