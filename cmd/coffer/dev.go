package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/server"
	"github.com/spf13/cobra"
)

func devCmd() *cobra.Command {
	var dataDir, apiAddr, logLevel string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a single-node dev server with a generated root key and credentials",
		Long: `Run one Coffer node for development: plain HTTP on 127.0.0.1:8200, data in a
temporary directory (deleted on exit) unless --data-dir is given, a generated
root key (a dev key: it is kept in the data directory, which a real server
never does) and a generated root access key pair. It prints the region, the
endpoint, the key pair and a ready-to-paste AWS CLI line once it is serving.`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd, dataDir, apiAddr, logLevel)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "keep data here across restarts (default: a temporary directory)")
	cmd.Flags().StringVar(&apiAddr, "api-addr", "127.0.0.1:8200", "address of the API")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "log level: trace, debug, info, warn, error")
	return cmd
}

const devRegion = "us-east-1"

func runDev(cmd *cobra.Command, dataDir, apiAddr, logLevel string) error {
	out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if dataDir == "" {
		tmp, err := os.MkdirTemp("", "coffer-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dataDir = tmp
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	rootKey, err := devRootKey(filepath.Join(dataDir, "dev-root.key"))
	if err != nil {
		return err
	}
	fmt.Fprintln(errw, "WARNING: coffer dev uses a generated root key kept next to its data. Never use dev mode for real secrets.")
	credsFile := filepath.Join(dataDir, "dev-credentials.json")
	var creds server.Credentials
	if c, err := readCredentials(credsFile); err == nil {
		creds = c
	} else if errors.Is(err, os.ErrNotExist) {
		creds = server.GenerateCredentials()
		if err := os.WriteFile(credsFile, fmt.Appendf(nil, "{\"AccessKeyId\": %q, \"SecretAccessKey\": %q}\n", creds.AccessKeyID, creds.SecretAccessKey), 0o600); err != nil {
			return err
		}
	} else {
		return err
	}
	logger := newLogger(errw, logLevel)
	cc := cluster.DefaultConfig()
	cc.NodeID, cc.Region, cc.DataDir = "dev", devRegion, dataDir
	cc.ClusterAddr, cc.GossipAddr, cc.GossipLocal = "127.0.0.1:0", "127.0.0.1:0", true
	cc.HeartbeatTimeout, cc.ElectionTimeout, cc.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
	region, err := server.StartRegion(server.RegionConfig{Cluster: cc, RootKey: rootKey, Bootstrap: &creds, Logger: logger})
	if err != nil {
		return err
	}
	if err := region.Node().Bootstrap(); err != nil {
		region.Shutdown()
		return err
	}
	srv, err := server.New(server.Config{APIAddr: apiAddr, Dev: true, Logger: logger}, region)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		region.Shutdown()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := waitServing(ctx, region); err != nil {
		shutdown(logger, srv, region)
		return err
	}
	endpoint := "http://" + srv.Addr()
	fmt.Fprintf(out, `Coffer dev server is serving.

  Region:                %s
  Endpoint:              %s
  AWS_ACCESS_KEY_ID=%s
  AWS_SECRET_ACCESS_KEY=%s
  Data directory:        %s

Try it:

  AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=%s \
    aws secretsmanager create-secret --name hello --secret-string world --endpoint-url %s

`, devRegion, endpoint, creds.AccessKeyID, creds.SecretAccessKey, dataDir,
		creds.AccessKeyID, creds.SecretAccessKey, devRegion, endpoint)
	waitForSignal(logger)
	shutdown(logger, srv, region)
	return nil
}

// waitServing polls until the region has a leader and an open keyring.
func waitServing(ctx context.Context, r *server.Region) error {
	for {
		if r.Node().IsLeader() && !r.Sealed() {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("the dev server did not become ready in time")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// devRootKey reads the dev root key from the data directory, creating it
// the first time, so a dev server restarted on the same --data-dir can
// read its secrets.
func devRootKey(path string) ([]byte, error) {
	if k, err := crypto.LoadRootKey(path); err == nil {
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k := crypto.RandomKey()
	if err := os.WriteFile(path, crypto.EncodeRootKey(k), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}
