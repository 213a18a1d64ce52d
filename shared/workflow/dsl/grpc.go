package dsl

// GRPCArgs are the arguments of a gRPC call.
type GRPCArgs struct {
	// Proto is the proto file that describes the service.
	Proto   ExternalResource
	Service GRPCService
	Method  string
	// Arguments are the request message's fields (values may embed runtime
	// expressions).
	Arguments map[string]any
}

// GRPCService names the service of a gRPC call and where it listens.
type GRPCService struct {
	Name           string
	Host           string
	Port           int // 0: the default, 443
	Authentication *AuthRef
}

func (d *decoder) grpcArgs(w *node, wp string) *GRPCArgs {
	if !d.object(w, wp, "grpc call arguments", []string{"proto", "service", "method", "arguments"}, "proto", "service", "method") {
		return nil
	}
	g := &GRPCArgs{Method: d.str(w, "method", wp), Arguments: d.freeObject(w, "arguments", wp)}
	if w.has("proto") {
		if r := d.externalResource(w.get("proto"), join(wp, "proto")); r != nil {
			g.Proto = *r
		}
	}
	if s := w.get("service"); w.has("service") {
		sp := join(wp, "service")
		if d.object(s, sp, "grpc service", []string{"name", "host", "port", "authentication"}, "name", "host") {
			g.Service = GRPCService{Name: d.str(s, "name", sp), Host: d.str(s, "host", sp)}
			if s.has("port") {
				port := d.integer(s, "port", sp)
				if port < 0 || port > 65535 {
					d.fail(s.get("port"), join(sp, "port"), "port must be between 0 and 65535, not %d", port)
				}
				g.Service.Port = int(port)
			}
			if s.has("authentication") {
				g.Service.Authentication = d.authRef(s.get("authentication"), join(sp, "authentication"))
			}
		}
	}
	if w.has("arguments") {
		d.scanExprs(w.get("arguments"), join(wp, "arguments"))
	}
	return g
}
