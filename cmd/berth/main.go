// Command berth runs Azure Container Instances and Azure Container Registry
// on your machine. See `berth help`.
package main

import (
	"os"

	"github.com/berth-dev/berth/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
