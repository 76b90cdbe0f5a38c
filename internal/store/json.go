package store

import (
	"encoding/json"
	"fmt"
)

// GetJSON decodes the JSON document stored under key in table into a new T.
// It returns ErrNotFound (unwrapped) when the key does not exist.
func GetJSON[T any](tx Tx, table, key string) (*T, error) {
	b, err := tx.Get(table, key)
	if err != nil {
		return nil, err
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("store: decode %s/%s: %w", table, key, err)
	}
	return v, nil
}

// PutJSON stores v as a JSON document under key in table.
func PutJSON(tx Tx, table, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %s/%s: %w", table, key, err)
	}
	return tx.Put(table, key, b)
}
