package containerinstance

import (
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

var azruntimePollOpts = runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}
