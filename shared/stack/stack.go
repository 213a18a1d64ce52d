// Package stack names the deployed resources a client needs (tables, queues,
// topic, keys) and resolves them from the environment or from the outputs file
// that a deploy wrote.
package stack

import (
	"encoding/json"
	"fmt"
	"os"
)

// Output keys of the CDK stack, also the keys of the outputs file.
const (
	OutReceiptsTable     = "ReceiptsTableName"
	OutReceiptsStreamArn = "ReceiptsStreamArn"
	OutStateTable        = "StateTableName"
	OutWorkQueueURL      = "WorkQueueUrl"
	OutWorkQueueArn      = "WorkQueueArn"
	OutDeadLetterURL     = "DeadLetterQueueUrl"
	OutAlertsTopicArn    = "AlertsTopicArn"
	OutCheckpointKeyID   = "CheckpointKeyId"
	OutCheckpointsTable  = "CheckpointsTableName"
	OutDataKeyArn        = "DataKeyArn"
	OutChargebackBucket  = "ChargebackBucketName"
	OutPayloadBucket     = "PayloadBucketName"
	OutArchiveBucket     = "ArchiveBucketName"
)

// Resources are the names and addresses of a deployed stack.
type Resources struct {
	ReceiptsTable   string
	StateTable      string
	WorkQueueURL    string
	DeadLetterURL   string
	AlertsTopicArn  string
	CheckpointKeyID string
	// CheckpointsTable holds the signed checkpoint log; only the
	// checkpointer can write it.
	CheckpointsTable string
	// ChargebackBucket holds the cost job's monthly exports.
	ChargebackBucket string
	// PayloadBucket holds inputs too large for a message (inputs/<sha256>)
	// and the detached payloads of receipts (blobs/<sha256>).
	PayloadBucket string
	// ArchiveBucket holds the archive objects of ended cases under Object
	// Lock; only the archiver can write it.
	ArchiveBucket string
}

// envNames maps each resource to the environment variable that overrides it.
var envNames = map[string]string{
	OutReceiptsTable:    "KNHK_RECEIPTS_TABLE",
	OutStateTable:       "KNHK_STATE_TABLE",
	OutWorkQueueURL:     "KNHK_WORK_QUEUE_URL",
	OutDeadLetterURL:    "KNHK_DLQ_URL",
	OutAlertsTopicArn:   "KNHK_ALERTS_TOPIC_ARN",
	OutCheckpointKeyID:  "KNHK_CHECKPOINT_KEY_ID",
	OutCheckpointsTable: "KNHK_CHECKPOINTS_TABLE",
	OutChargebackBucket: "KNHK_CHARGEBACK_BUCKET",
	OutPayloadBucket:    "KNHK_PAYLOAD_BUCKET",
	OutArchiveBucket:    "KNHK_ARCHIVE_BUCKET",
}

// EnvName returns the environment variable that carries an output key.
func EnvName(outputKey string) string { return envNames[outputKey] }

// DefaultOutputsFile is where a local deploy writes the stack outputs.
const DefaultOutputsFile = ".local/outputs.json"

// Resolve reads resources from the environment, filling gaps from the outputs
// file (a JSON object of output key to value) when it exists.
func Resolve(outputsFile string) (Resources, error) {
	outs := map[string]string{}
	if outputsFile != "" {
		b, err := os.ReadFile(outputsFile)
		switch {
		case err == nil:
			if outs, err = decodeOutputs(b); err != nil {
				return Resources{}, fmt.Errorf("read stack outputs %s: %w", outputsFile, err)
			}
		case !os.IsNotExist(err):
			return Resources{}, fmt.Errorf("read stack outputs: %w", err)
		}
	}
	get := func(key string) string {
		if v := os.Getenv(envNames[key]); v != "" {
			return v
		}
		return outs[key]
	}
	return Resources{
		ReceiptsTable:    get(OutReceiptsTable),
		StateTable:       get(OutStateTable),
		WorkQueueURL:     get(OutWorkQueueURL),
		DeadLetterURL:    get(OutDeadLetterURL),
		AlertsTopicArn:   get(OutAlertsTopicArn),
		CheckpointKeyID:  get(OutCheckpointKeyID),
		CheckpointsTable: get(OutCheckpointsTable),
		ChargebackBucket: get(OutChargebackBucket),
		PayloadBucket:    get(OutPayloadBucket),
		ArchiveBucket:    get(OutArchiveBucket),
	}, nil
}

// decodeOutputs reads a flat object of output id to value (as a local deploy
// writes it) or the file `cdk deploy --outputs-file` writes: one object per
// stack name.
func decodeOutputs(b []byte) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	outs := map[string]string{}
	for k, v := range raw {
		var s string
		if json.Unmarshal(v, &s) == nil {
			outs[k] = s
			continue
		}
		var nested map[string]string
		if err := json.Unmarshal(v, &nested); err != nil {
			return nil, fmt.Errorf("output %s is neither a string nor a stack's outputs", k)
		}
		for nk, nv := range nested {
			outs[nk] = nv
		}
	}
	return outs, nil
}
