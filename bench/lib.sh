# bench/lib.sh — helpers shared by the bench scripts (sourced, not run).

# bench_cert DIR: a throwaway self-signed P-256 certificate for localhost and
# 127.0.0.1, valid two days, as DIR/cert.pem and DIR/key.pem.
bench_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1/key.pem" \
    -out "$1/cert.pem" -days 2 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    >/dev/null 2>&1
}
