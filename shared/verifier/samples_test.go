package verifier

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/knhk/knhk/shared/receipt"
)

var update = flag.Bool("update", false, "rewrite the sample stream events in events/dynamodb")

// samplesDir is events/dynamodb under the repository root.
func samplesDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "events", "dynamodb")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root not found")
		}
		dir = parent
	}
}

const sampleStreamArn = "arn:aws:dynamodb:eu-west-1:123456789012:table/knhk-receipts/stream/2026-11-27T09:00:00.000"

// sampleEvents builds the sample stream events from real receipts of two
// payment cases.
func sampleEvents(t *testing.T) map[string]events.DynamoDBEvent {
	a := buildChain(t, "acme", "c-7f3a9e21", 6)
	b := buildChain(t, "acme", "c-0b41d5c8", 3)
	at := time.Date(2026, 11, 27, 9, 30, 1, 0, time.UTC)
	n := 0
	rec := func(r *receipt.Receipt) events.DynamoDBEventRecord {
		n++
		e := insertRecord(t, r, 4100000000000000000+n)
		e.EventID = fmt.Sprintf("%032x", n)
		e.EventVersion, e.EventSourceArn = "1.1", sampleStreamArn
		e.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: at.Add(time.Duration(n) * time.Second)}
		e.Change.SizeBytes = int64(len(e.Change.NewImage["r"].String()) + 200)
		return e
	}
	var batch []events.DynamoDBEventRecord
	for i := range 6 {
		batch = append(batch, rec(a[i]))
		if i < 3 {
			batch = append(batch, rec(b[i]))
		}
	}
	modify := rec(a[4]) // a task.completed: its output can change
	modify.EventName = "MODIFY"
	modify.Change.OldImage = modify.Change.NewImage
	img := map[string]events.DynamoDBAttributeValue{}
	for k, v := range modify.Change.OldImage {
		img[k] = v
	}
	changed := strings.Replace(img["r"].String(), `"attempt":0`, `"attempt":1`, 1)
	if changed == img["r"].String() {
		t.Fatal("the modify sample's receipt has no attempt to change")
	}
	img["r"] = events.NewStringAttribute(changed)
	modify.Change.NewImage = img
	remove := rec(a[2])
	remove.EventName = "REMOVE"
	remove.Change.OldImage, remove.Change.NewImage = remove.Change.NewImage, nil
	ttl := rec(b[0])
	ttl.EventName = "REMOVE"
	ttl.Change.OldImage, ttl.Change.NewImage = ttl.Change.NewImage, nil
	ttl.UserIdentity = &events.DynamoDBUserIdentity{Type: "Service", PrincipalID: "dynamodb.amazonaws.com"}
	// The same case written as segments: one record per segment.
	c := buildChain(t, "acme", "c-5e2d8a40", 6)
	var segs []events.DynamoDBEventRecord
	for _, run := range [][]*receipt.Receipt{c[:3], c[3:]} {
		n++
		e := segmentRecord(t, run, 4100000000000000000+n)
		e.EventID = fmt.Sprintf("%032x", n)
		e.EventVersion, e.EventSourceArn = "1.1", sampleStreamArn
		e.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: at.Add(time.Duration(n) * time.Second)}
		e.Change.SizeBytes = 900
		segs = append(segs, e)
	}
	return map[string]events.DynamoDBEvent{
		"insert-batch.json":    {Records: batch},
		"insert-segments.json": {Records: segs},
		"modify.json":          {Records: []events.DynamoDBEventRecord{modify}},
		"remove.json":          {Records: []events.DynamoDBEventRecord{remove}},
		"ttl-remove.json":      {Records: []events.DynamoDBEventRecord{ttl}},
	}
}

// The sample events are what the samples builder makes (run with -update
// to rewrite them) and the verifier's checks give each its expected result.
func TestSampleEvents(t *testing.T) {
	dir := samplesDir(t)
	want := map[string][]receipt.Kind{
		"insert-batch.json":    {},
		"insert-segments.json": {},
		"modify.json":          {receipt.Modified},
		"remove.json":          {receipt.Removed},
		"ttl-remove.json":      {receipt.TTLExpired},
	}
	for name, ev := range sampleEvents(t) {
		b, err := json.MarshalIndent(ev, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, '\n')
		path := filepath.Join(dir, name)
		if *update {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		have, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run the test with -update)", err)
		}
		if !bytes.Equal(have, b) {
			t.Errorf("%s differs from what the samples builder makes (run the test with -update)", name)
		}
		var got events.DynamoDBEvent
		if err := json.Unmarshal(have, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		kinds := []receipt.Kind{}
		pos := map[string]receipt.Watermark{}
		for _, rec := range got.Records {
			if rec.EventName != "INSERT" {
				for _, f := range receipt.VerifyStreamRecord(rec) {
					kinds = append(kinds, f.Kind)
				}
				continue
			}
			id, _ := keyOf(rec)
			cur, ok := pos[id]
			if !ok {
				cur = receipt.Watermark{Seq: -1}
			}
			rs, fs := Inserted(rec)
			if len(rs) == 0 || Classify(cur, rs[0].Seq) != Link {
				t.Fatalf("%s: record %s does not continue its case", name, rec.EventID)
			}
			for _, f := range fs {
				kinds = append(kinds, f.Kind)
			}
			for _, r := range rs {
				var link []receipt.Finding
				cur, link = Advance(cur, nil, r)
				for _, f := range withoutSelf(link, fs) {
					kinds = append(kinds, f.Kind)
				}
			}
			pos[id] = cur
		}
		if !slices.Equal(kinds, want[name]) {
			t.Errorf("%s: findings %v, want %v", name, kinds, want[name])
		}
	}
}
