package main

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/store"
)

// payloadBlobs is a stack's store of detached payloads: its payloads bucket
// (blobs/<sha256>), which falls back to the state table for payloads written
// there before they moved; a stack without the bucket keeps them in the
// state table.
func payloadBlobs(cfg aws.Config, db *dynamodb.Client, stateTable, bucket string) store.BlobStore {
	state := store.NewState(db, stateTable)
	if bucket == "" {
		return state
	}
	return objects.NewBlobs(objects.New(objects.NewClient(cfg), bucket), state)
}
