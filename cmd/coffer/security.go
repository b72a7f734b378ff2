package main

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/tlsutil"
	"github.com/hashicorp/go-hclog"
)

// envRootKey carries the root key itself (base64), for automation that
// cannot mount a file. The server removes it from its environment once
// read, so no child process inherits it.
const envRootKey = "COFFER_ROOT_KEY"

// security is a server's transport material: the cluster port's mutual
// TLS, the API's TLS and the gossip key; all nil with --insecure-plaintext.
type security struct {
	reloader  *tlsutil.Reloader
	api       *tls.Config
	gossipKey []byte
}

// clusterTLS is the cluster port's material: nil, not a nil *Reloader in
// a non-nil interface, when there is none, so the port runs plaintext
// instead of calling a nil Reloader on its first connection.
func (s *security) clusterTLS() cluster.TLS {
	if s.reloader == nil {
		return nil
	}
	return s.reloader
}

// loadSecurity loads the TLS and gossip material, or refuses to go on
// without it unless --insecure-plaintext says so.
func loadSecurity(f *serverFlags) (*security, error) {
	given := f.tlsCAFile != "" || f.tlsCertFile != "" || f.tlsKeyFile != "" || f.gossipKeyFile != ""
	if f.insecurePlaintext {
		if given {
			return nil, errors.New("--insecure-plaintext turns TLS and gossip encryption off: drop it, or drop the --tls-* and --gossip-key-file flags")
		}
		return &security{}, nil
	}
	var missing []string
	for name, v := range map[string]string{"--tls-ca-file": f.tlsCAFile, "--tls-cert-file": f.tlsCertFile,
		"--tls-key-file": f.tlsKeyFile, "--gossip-key-file": f.gossipKeyFile} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("a server encrypts every port, and %s not given: make the files with `coffer operator tls ca create`, `coffer operator tls cert create` and `coffer operator gossip keygen`, or pass --insecure-plaintext to run in the clear on a closed test network",
			strings.Join(missing, ", "))
	}
	rl, err := tlsutil.NewReloader(tlsutil.Files{CAFile: f.tlsCAFile, CertFile: f.tlsCertFile, KeyFile: f.tlsKeyFile})
	if err != nil {
		return nil, err
	}
	if err := checkNodeCert(rl, f.nodeID, f.region); err != nil {
		return nil, err
	}
	key, err := loadGossipKey(f.gossipKeyFile)
	if err != nil {
		return nil, err
	}
	return &security{reloader: rl, api: rl.APIConfig(), gossipKey: key}, nil
}

// checkNodeCert refuses a certificate made for another node or region:
// peers would refuse it, or worse, accept this node under another name.
func checkNodeCert(rl *tlsutil.Reloader, node, region string) error {
	n, r, err := tlsutil.PeerIdentity(rl.Leaf())
	if err != nil {
		return fmt.Errorf("--tls-cert-file: %w", err)
	}
	if n != node || r != region {
		return fmt.Errorf("--tls-cert-file names node %s of region %s, but this is node %s of region %s: make one with `coffer operator tls cert create --node %s --region %s`",
			n, r, node, region, node, region)
	}
	return nil
}

// loadGossipKey reads a gossip key file: base64 of 16, 24 or 32 bytes.
func loadGossipKey(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read gossip key: %w", err)
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("gossip key file %s: not base64: %w", path, err)
	}
	if len(k) != 16 && len(k) != 24 && len(k) != 32 {
		return nil, fmt.Errorf("gossip key file %s: %d bytes after base64 decoding, want 16, 24 or 32", path, len(k))
	}
	return k, nil
}

// serverRootKey is the root key from --root-key-file or COFFER_ROOT_KEY,
// or nil (the node starts sealed).
func serverRootKey(path string) ([]byte, error) {
	env, inEnv := os.LookupEnv(envRootKey)
	os.Unsetenv(envRootKey)
	switch {
	case path != "" && inEnv:
		return nil, fmt.Errorf("both --root-key-file and %s are set: give the root key one way", envRootKey)
	case path != "":
		return crypto.LoadRootKey(path)
	case inEnv:
		k, err := crypto.ParseRootKey(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envRootKey, err)
		}
		return k, nil
	}
	return nil, nil
}

// reloadOnHUP reloads the TLS files on SIGHUP until the returned stop is
// called. A failed reload keeps the material in use and says why.
func (s *security) reloadOnHUP(logger hclog.Logger) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-ch:
			}
			if s.reloader == nil {
				logger.Info("SIGHUP: nothing to reload (--insecure-plaintext)")
				continue
			}
			if err := s.reloader.Reload(); err != nil {
				logger.Error("SIGHUP: TLS reload failed; the previous certificates stay in use", "error", err)
				continue
			}
			logger.Info("SIGHUP: TLS certificates reloaded", "not_after", s.reloader.Leaf().NotAfter)
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
