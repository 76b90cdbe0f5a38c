package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/store"
)

// tables names the registry's tables in the state store. Keys:
//
//	registry/<name>/repositories  <repo>                 repositoryRecord
//	registry/<name>/blobs         <repo>@<digest>        blobLinkRecord (layers, configs)
//	registry/<name>/manifests     <repo>@<digest>        manifestRecord
//	registry/<name>/tags          <repo>:<tag>           tagRecord
//	registry/<name>/uploads       <upload id>            uploadRecord
//
// Repository names contain neither '@' nor ':', so a prefix scan of
// "<repo>@" or "<repo>:" never reaches another repository.
type tables struct {
	repositories, blobs, manifests, tags, uploads string
}

func newTables(registry string) tables {
	p := "registry/" + strings.ToLower(registry) + "/"
	return tables{
		repositories: p + "repositories",
		blobs:        p + "blobs",
		manifests:    p + "manifests",
		tags:         p + "tags",
		uploads:      p + "uploads",
	}
}

func repoKey(repo, digest string) string { return repo + "@" + digest }
func tagKey(repo, tag string) string     { return repo + ":" + tag }

// Stored records. They are the registry's own format and change only in
// backward-compatible ways; wire structs live beside their handlers.

// repositoryRecord: the repository exists (it has had a manifest pushed).
type repositoryRecord struct {
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// blobLinkRecord: the blob is part of the repository.
type blobLinkRecord struct {
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// manifestRecord: the manifest is part of the repository. Its bytes are the
// blob of the same digest.
type manifestRecord struct {
	MediaType string    `json:"mediaType"`
	Size      int64     `json:"size"`
	Created   time.Time `json:"created"`
}

// tagRecord: the tag points at a manifest of the repository.
type tagRecord struct {
	Digest  string    `json:"digest"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// uploadRecord: an upload in progress, bound to the repository it was
// started in. Its bytes are the blob.Store upload of the same id.
type uploadRecord struct {
	Repository string    `json:"repository"`
	Started    time.Time `json:"started"`
}

// getJSON reads a record. found is false when the key does not exist.
func getJSON(tx store.Tx, table, key string, v any) (found bool, err error) {
	b, err := tx.Get(table, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode %s/%s: %w", table, key, err)
	}
	return true, nil
}

func putJSON(tx store.Tx, table, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(table, key, b)
}
