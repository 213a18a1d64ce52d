// Package cost prices what KNHK really consumed: a versioned table of AWS
// unit prices (each with its public source and the date it was read), exact
// decimal arithmetic on metered usage, the same workflows priced as Step
// Functions Standard and Express would bill them, shared costs split in
// proportion with idle shown apart, budget thresholds, and a capacity plan.
// It is pure: the scheduled cost job and the CLI feed it.
package cost

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"path"
	"regexp"
	"slices"
	"time"
)

// Unit names a billed unit in a price table.
type Unit string

// The units KNHK meters and prices.
const (
	LambdaRequest         Unit = "lambda.request"
	LambdaGBSecondArm64   Unit = "lambda.gbSecond.arm64"
	LambdaGBSecondX86     Unit = "lambda.gbSecond.x86_64"
	DynamoWriteUnit       Unit = "dynamodb.writeRequestUnit"
	DynamoReadUnit        Unit = "dynamodb.readRequestUnit"
	DynamoStreamRead      Unit = "dynamodb.streamReadRequest"
	DynamoStorageGBMonth  Unit = "dynamodb.storageGBMonth"
	SQSRequest            Unit = "sqs.request"
	SNSPublish            Unit = "sns.publish"
	KMSKeyMonth           Unit = "kms.keyMonth"
	KMSRequest            Unit = "kms.request"
	KMSAsymmetricRequest  Unit = "kms.asymmetricRequest"
	SecretMonth           Unit = "secretsmanager.secretMonth"
	SecretsRequest        Unit = "secretsmanager.request"
	MetricMonth           Unit = "cloudwatch.metricMonth"
	LogsIngestedGB        Unit = "cloudwatch.logsIngestedGB"
	S3Put                 Unit = "s3.putRequest"
	S3Get                 Unit = "s3.getRequest"
	S3StorageGBMonth      Unit = "s3.storageGBMonth"
	SFNStandardTransition Unit = "stepfunctions.standard.transition"
	SFNExpressRequest     Unit = "stepfunctions.express.request"
	SFNExpressGBSecond    Unit = "stepfunctions.express.gbSecond"
)

// Units lists every unit a price table must price.
var Units = []Unit{
	LambdaRequest, LambdaGBSecondArm64, LambdaGBSecondX86, DynamoWriteUnit, DynamoReadUnit, DynamoStreamRead,
	DynamoStorageGBMonth, SQSRequest, SNSPublish, KMSKeyMonth, KMSRequest, KMSAsymmetricRequest, SecretMonth,
	SecretsRequest, MetricMonth, LogsIngestedGB, S3Put, S3Get, S3StorageGBMonth, SFNStandardTransition,
	SFNExpressRequest, SFNExpressGBSecond,
}

// Price is one unit price and where it comes from.
type Price struct {
	USD    string `json:"usd"`    // decimal dollars per unit
	Per    string `json:"per"`    // what one unit is
	Source string `json:"source"` // the public page it was read from
	Read   string `json:"read"`   // the date it was read (YYYY-MM-DD)

	rat *big.Rat
}

// Table is a versioned price table for one region.
type Table struct {
	Version  string         `json:"version"`
	Region   string         `json:"region"`
	Currency string         `json:"currency"`
	Prices   map[Unit]Price `json:"prices"`
}

//go:embed prices/*.json
var tables embed.FS

// DefaultVersion is the price table the cost job uses unless told otherwise.
const DefaultVersion = "us-east-1-2026-12"

// Tables lists the versions of the embedded price tables.
func Tables() ([]string, error) {
	ents, err := tables.ReadDir("prices")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name()[:len(e.Name())-len(path.Ext(e.Name()))])
	}
	slices.Sort(out)
	return out, nil
}

// Load reads and validates an embedded price table by version.
func Load(version string) (*Table, error) {
	b, err := tables.ReadFile("prices/" + version + ".json")
	if err != nil {
		return nil, fmt.Errorf("price table %q: %w", version, err)
	}
	return Parse(b)
}

// Parse reads and validates a price table.
func Parse(b []byte) (*Table, error) {
	var t Table
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("price table: %w", err)
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("price table %q: %w", t.Version, err)
	}
	return &t, nil
}

var httpsURL = regexp.MustCompile(`^https://[a-z0-9.-]+\.[a-z]{2,}(/\S*)?$`)

// validate checks that every unit is priced, and every price is a
// non-negative decimal with a public source and the date it was read.
func (t *Table) validate() error {
	var errs []error
	if t.Version == "" || t.Region == "" || t.Currency != "USD" {
		errs = append(errs, fmt.Errorf("version, region and currency USD are required (got %q, %q, %q)", t.Version, t.Region, t.Currency))
	}
	for _, u := range Units {
		if _, ok := t.Prices[u]; !ok {
			errs = append(errs, fmt.Errorf("%s: no price", u))
		}
	}
	for u, p := range t.Prices {
		if !slices.Contains(Units, u) {
			errs = append(errs, fmt.Errorf("%s: unknown unit", u))
			continue
		}
		r, ok := new(big.Rat).SetString(p.USD)
		if !ok || r.Sign() < 0 {
			errs = append(errs, fmt.Errorf("%s: price %q is not a non-negative decimal", u, p.USD))
		}
		if !httpsURL.MatchString(p.Source) {
			errs = append(errs, fmt.Errorf("%s: source %q is not a public https page", u, p.Source))
		}
		if _, err := time.Parse(time.DateOnly, p.Read); err != nil {
			errs = append(errs, fmt.Errorf("%s: read date %q: want YYYY-MM-DD", u, p.Read))
		}
		if p.Per == "" {
			errs = append(errs, fmt.Errorf("%s: says not what one unit is", u))
		}
		p.rat = r
		t.Prices[u] = p
	}
	return errors.Join(errs...)
}

// Rate returns a unit's price.
func (t *Table) Rate(u Unit) *big.Rat {
	p, ok := t.Prices[u]
	if !ok || p.rat == nil {
		return new(big.Rat)
	}
	return p.rat
}
