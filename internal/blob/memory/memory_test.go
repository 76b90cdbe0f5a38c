package memory_test

import (
	"testing"

	"github.com/berth-dev/berth/internal/blob"
	"github.com/berth-dev/berth/internal/blob/blobtest"
	"github.com/berth-dev/berth/internal/blob/memory"
)

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return memory.New() })
}
