package containerd

import (
	"context"
	"fmt"
)

// Images lists the references of the images in berth's containerd
// namespace (pulled before, so groups using them start without a pull).
func (r *Runtime) Images(ctx context.Context) ([]string, error) {
	imgs, err := r.client.ImageService().List(r.nsctx(ctx))
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]string, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, img.Name)
	}
	return out, nil
}
