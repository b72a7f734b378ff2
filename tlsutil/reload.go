package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Files names the PEM files of a node's cluster-port material.
type Files struct {
	// CAFile holds one or more CA certificates; peers must chain to one of
	// them. Several allow a CA rotation: trust old and new, reissue the
	// node certificates, then drop the old CA.
	CAFile string
	// CertFile holds the node's certificate (optionally followed by
	// intermediates); KeyFile holds its private key.
	CertFile, KeyFile string
}

// Reloader is a node's cluster-port TLS material, loaded from Files and
// replaced whole by Reload (on SIGHUP). It is safe for concurrent use:
// handshakes read the current material through an atomic pointer, and a
// handshake started before a Reload finishes with the material it began
// with. Connections already established are not touched by a Reload.
type Reloader struct {
	files Files
	s     swap[material]
	// node and region are what the first certificate names: a reload
	// must keep them (a node cannot become another by SIGHUP).
	node, region string
}

// material is one consistent load: the CA pool and a key pair verified
// against it. It is never modified after it is built.
type material struct {
	pool *x509.CertPool
	cert *tls.Certificate // Leaf is set
}

// NewReloader loads the CA, the certificate and the key, and checks that
// they make a usable node identity: the key belongs to the certificate, the
// certificate is valid now, chains to one of the CAs for both server and
// client use, and names a Coffer server (PeerIdentity).
func NewReloader(f Files) (*Reloader, error) {
	r := &Reloader{files: f}
	r.s.load = func() (*material, error) {
		m, err := loadMaterial(r.files, time.Now())
		if err != nil || r.node == "" {
			return m, err
		}
		if node, region, _ := PeerIdentity(m.cert.Leaf); node != r.node || region != r.region {
			return nil, fmt.Errorf("the new certificate names node %s of region %s, but this node is %s of region %s", node, region, r.node, r.region)
		}
		return m, nil
	}
	if err := r.s.reload(); err != nil {
		return nil, err
	}
	r.node, r.region, _ = PeerIdentity(r.Leaf())
	return r, nil
}

// Reload reads the files again. On any error the material in use stays in
// use, whole, and the error is returned; so an operator who replaced the
// certificate but not yet the key can fix the key and send SIGHUP again.
func (r *Reloader) Reload() error { return r.s.reload() }

// Leaf is the node's current certificate, for logging its names and expiry.
func (r *Reloader) Leaf() *x509.Certificate { return r.s.cur.Load().cert.Leaf }

// ServerConfig is the configuration for accepting cluster connections. The
// dialer must present a certificate that chains to the current CAs, is
// valid now and allows client authentication (crypto/tls checks all three
// under RequireAndVerifyClientCert). It does not check which node or region
// the certificate names: the caller does, with PeerIdentity.
//
// The returned config may be kept (in a tls.NewListener, say): it holds no
// material itself. GetConfigForClient builds each handshake's config from
// the material current at that moment, so a Reload applies to the next
// connection, and the verification stays crypto/tls's own rather than a
// hand-written VerifyPeerCertificate.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		ClientAuth:             tls.RequireAndVerifyClientCert,
		SessionTicketsDisabled: true,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := r.s.cur.Load()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*m.cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    m.pool,
				// A resumed session skips verifying the client's chain,
				// so it would outlive a Reload that dropped its CA.
				// Cluster connections are long-lived; a full handshake
				// each time costs little.
				SessionTicketsDisabled: true,
			}, nil
		},
	}
}

// APIConfig serves the node's current certificate on the HTTPS API port,
// where clients authenticate with SigV4 and present no certificate. The
// certificate's --additional-dnsname and --additional-ipaddress names are
// the ones API clients dial.
func (r *Reloader) APIConfig() *tls.Config {
	return serveCurrent(func() *tls.Certificate { return r.s.cur.Load().cert })
}

// ClientConfig is the configuration for dialing a peer that must present a
// certificate for serverName (ServerName(region) for a region's servers)
// that chains to the current CAs, is valid now and allows server
// authentication; crypto/tls checks all of it, with no InsecureSkipVerify.
//
// The returned config is a snapshot of the material current at the call:
// call ClientConfig for each dial, as the cluster mux does, and a Reload
// applies to the next dial. A snapshot keeps the CA pool and the presented
// certificate from one load, which a config reading them at handshake time
// could not promise without skipping crypto/tls's verification.
func (r *Reloader) ClientConfig(serverName string) *tls.Config {
	m := r.s.cur.Load()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: serverName,
		RootCAs:    m.pool,
		// GetClientCertificate rather than Certificates: crypto/tls would
		// send no certificate at all if the server's list of acceptable
		// CAs did not name ours, and the server would then log "no
		// certificate" instead of the real mismatch.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return m.cert, nil
		},
	}
}

// loadMaterial reads and checks one consistent set of files.
func loadMaterial(f Files, now time.Time) (*material, error) {
	caPEM, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: read CA file: %w", err)
	}
	cas, err := parseCertificates(caPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: CA file %s: %w", f.CAFile, err)
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		if err := checkCA(ca); err != nil {
			return nil, fmt.Errorf("tlsutil: CA file %s: %w", f.CAFile, err)
		}
		pool.AddCert(ca)
	}
	cert, err := loadKeyPair(f.CertFile, f.KeyFile, now)
	if err != nil {
		return nil, err
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("tlsutil: certificate file %s: %w", f.CertFile, err)
		}
		inter.AddCert(c)
	}
	// The node dials and accepts with this one certificate, so it must
	// verify for both uses. (One Verify with both usages listed would
	// accept either.)
	for _, use := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		_, err := cert.Leaf.Verify(x509.VerifyOptions{
			Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{use},
		})
		if err != nil {
			return nil, fmt.Errorf("tlsutil: certificate %s does not verify against CA file %s: %w", f.CertFile, f.CAFile, err)
		}
	}
	if _, _, err := peerIdentity(cert.Leaf); err != nil {
		return nil, fmt.Errorf("tlsutil: %s: %w", f.CertFile, err)
	}
	return &material{pool: pool, cert: cert}, nil
}

// loadKeyPair reads a certificate and its key, checks that they belong
// together and that the certificate is valid at now.
func loadKeyPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: read key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: certificate %s with key %s: %w", certFile, keyFile, err)
	}
	if pair.Leaf == nil { // only under GODEBUG=x509keypairleaf=0
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tlsutil: certificate %s: %w", certFile, err)
		}
	}
	if err := checkValidity("certificate "+certFile, pair.Leaf, now); err != nil {
		return nil, fmt.Errorf("tlsutil: %w", err)
	}
	return &pair, nil
}

// serveCurrent is a server configuration without client certificates that
// presents, to each new connection, the certificate current at that moment.
func serveCurrent(current func() *tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return current(), nil
		},
	}
}

// swap holds material that a reload replaces whole or not at all.
type swap[T any] struct {
	// mu serialises reloads, so a slow load started earlier can never
	// overwrite one that started later. Readers do not take it.
	mu   sync.Mutex
	cur  atomic.Pointer[T]
	load func() (*T, error)
}

func (s *swap[T]) reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.load()
	if err != nil {
		return err
	}
	s.cur.Store(m)
	return nil
}
