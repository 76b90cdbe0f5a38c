package memory

import (
	"testing"

	"github.com/berth-dev/berth/internal/store"
	"github.com/berth-dev/berth/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Suite(t, func(t *testing.T) store.Store { return New() })
}
