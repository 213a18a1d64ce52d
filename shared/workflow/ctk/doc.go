// Package ctk runs the Serverless Workflow conformance test kit (Gherkin
// features) against the engine; the runner lives in its test.
package ctk
