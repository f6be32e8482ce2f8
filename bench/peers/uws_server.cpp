/*
 * uWebSockets peer for wschat-bench (docs/BENCHMARKS.md).
 *
 *   uws_server PORT        (build: bench/peers/README.md; not part of the build)
 *
 * The benchmark contract: /ws/ROOM sends every message to every connection
 * in ROOM, the sender included; /echo echoes. Written the way uWebSockets'
 * own examples and README do it: a room is a pub/sub topic — the upgrade
 * handler keeps the room from the URL in the socket's user data, `open`
 * subscribes the socket to it, and each message is published to the topic
 * with App::publish (which, unlike WebSocket::publish, includes the sender).
 * No compression, as wschat-bench does not negotiate it.
 */
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <sys/resource.h>

#include "App.h"

struct PerSocketData {
  std::string room; /* empty on /echo */
};

int main(int argc, char **argv) {
  int port = argc > 1 ? std::atoi(argv[1]) : 9001;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  uWS::App app;
  app.ws<PerSocketData>("/ws/:room", {
      .compression = uWS::DISABLED,
      .maxPayloadLength = 16 * 1024 * 1024,
      .idleTimeout = 120,
      .maxBackpressure = 1024 * 1024,
      .upgrade = [](auto *res, auto *req, auto *context) {
        res->template upgrade<PerSocketData>({std::string(req->getParameter(0))}, req->getHeader("sec-websocket-key"),
                                             req->getHeader("sec-websocket-protocol"),
                                             req->getHeader("sec-websocket-extensions"), context);
      },
      .open = [](auto *ws) { ws->subscribe(ws->getUserData()->room); },
      .message = [&app](auto *ws, std::string_view message, uWS::OpCode op) {
        app.publish(ws->getUserData()->room, message, op);
      },
  });
  app.ws<PerSocketData>("/echo", {
      .compression = uWS::DISABLED,
      .maxPayloadLength = 16 * 1024 * 1024,
      .idleTimeout = 120,
      .maxBackpressure = 16 * 1024 * 1024,
      .message = [](auto *ws, std::string_view message, uWS::OpCode op) { ws->send(message, op); },
  });
  app.listen("127.0.0.1", port, [port](auto *listen_socket) {
    if (listen_socket) std::printf("uws_server listening on %d\n", port);
    else std::exit(1);
    std::fflush(stdout);
  });
  app.run();
  return 0;
}
