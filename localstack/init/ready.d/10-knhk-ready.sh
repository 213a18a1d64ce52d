#!/usr/bin/env bash
# LocalStack runs this once every requested service is up: it reports
# readiness and the settings a client needs to reach the endpoint.
set -euo pipefail
echo "KNHK: LocalStack ready on port 4566 (region ${AWS_DEFAULT_REGION:-us-east-1}); services: ${SERVICES:-all}"
echo "KNHK: export AWS_ENDPOINT_URL=http://localhost:4566, then run: knhk local deploy (or cdklocal deploy in infra/)"
