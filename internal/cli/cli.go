// Package cli implements berth's command line: `berth serve` runs the
// emulator, `berth env` prints the environment a client needs, `berth sp`
// creates, lists and deletes service principals of a running berth.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/berth-dev/berth/internal/aci"
	"io"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/internal/datadir"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/runtime/containerd/logdriver"
	"github.com/berth-dev/berth/internal/server"
)

const usage = `berth: Azure Container Instances and Container Registry on your machine.

Usage:
  berth serve [--addr HOST:PORT] [--data-dir DIR] [--containerd-socket PATH] [--log-level LEVEL]
              [--bridge NAME] [--subnet CIDR]
  berth env   [--data-dir DIR]
  berth sp    create [--name NAME] | list | delete APP_ID|OBJECT_ID   [--data-dir DIR] [--endpoint URL]
  berth version
`

// Version is set at build time.
var Version = "dev"

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stderr)
	case "env":
		err = env(args[1:], stdout, stderr)
	case "sp":
		err = sp(args[1:], stdout, stderr)
	case logdriver.Command: // hidden: run by containerd's shim for every container
		return logdriver.Main(args[1:])
	case "version", "--version":
		fmt.Fprintln(stdout, "berth", Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "berth: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "berth:", err)
		return 1
	}
	return 0
}

func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "address for ARM and the token service (default "+datadir.DefaultAddr+", or what the data directory last used)")
	dir := fs.String("data-dir", datadir.Default(), "data directory")
	sock := fs.String("containerd-socket", "", "use this containerd socket instead of starting berth's own containerd")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	bridge := fs.String("bridge", "", "advanced: name of the Linux bridge for container groups (default berth0)")
	subnet := fs.String("subnet", "", "advanced: subnet container groups get their addresses from (default 10.213.0.0/16)")
	gpu := fs.String("gpu", "emulate", "groups requesting GPUs on a host without them: emulate (run without a device, with a Warning event) or refuse (ACI's error for a SKU the region lacks)")
	quotaGroups := fs.Int("quota-container-groups", aci.DefaultQuota.ContainerGroups, "container groups each subscription may have per region")
	quotaCores := fs.Int("quota-cores", aci.DefaultQuota.StandardCores, "standard cores each subscription may use per region")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *gpu != "emulate" && *gpu != "refuse" {
		return fmt.Errorf("--gpu: want emulate or refuse, not %q", *gpu)
	}
	if *quotaGroups < 1 || *quotaCores < 1 {
		return errors.New("--quota-container-groups and --quota-cores must be at least 1")
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return server.Run(ctx, server.Options{DataDir: *dir, Addr: *addr, ContainerdSocket: *sock, Bridge: *bridge, Subnet: *subnet, Log: log,
		GPU: *gpu, Quota: aci.Quota{ContainerGroups: *quotaGroups, StandardCores: *quotaCores}})
}

func env(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("env", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data-dir", datadir.Default(), "data directory of the server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d, err := datadir.Open(*dir, "")
	if err != nil {
		return err
	}
	base := "https://" + d.Config.Addr
	vars := [][2]string{
		{"AZURE_TENANT_ID", identity.DefaultTenantID},
		{"AZURE_CLIENT_ID", identity.DefaultClientID},
		{"AZURE_CLIENT_SECRET", identity.DefaultClientSecret},
		{"AZURE_SUBSCRIPTION_ID", server.DefaultSubscriptionID},
		{"AZURE_AUTHORITY_HOST", base + "/"},
		{"BERTH_ENDPOINT", base},
		{"BERTH_REGISTRY", d.Config.Registries[datadir.DefaultRegistryName]},
		{"BERTH_DATA_DIR", d.Path},
		{"SSL_CERT_FILE", d.BundlePath()},
		{"REQUESTS_CA_BUNDLE", d.BundlePath()},
		{"NODE_EXTRA_CA_CERTS", d.PKI.CAPath()},
	}
	for _, v := range vars {
		fmt.Fprintf(stdout, "export %s=%s\n", v[0], shellQuote(v[1]))
	}
	return nil
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
