// The HTTP server with clients that misbehave or wait (docs/http-api.md
// "Limits"): slow and idle clients, the connection cap, writes that are not
// drained, jobs on the worker pool, a full queue and a throwing handler. Every
// wait is bounded and nothing sleeps a fixed time.

#include <httplib.h>

#include "agent/platform/logging.hpp"
#include "tests/net/http_server_support.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_pki.hpp"

using namespace pha;
using namespace pha::test::http_server;

TEST_CASE("http server: a slow client gets 408 while others are served") {
  auto opts = options();
  opts.request_timeout = 300ms;
  Server server(opts, echo);
  start(server);

  RawClient slow(server.port());
  REQUIRE(slow.send("GET / HTTP/1.1\r\nHost: test\r\nX-Slow: "));
  const auto first_byte = std::chrono::steady_clock::now();
  bool others_served = false;
  // One more header byte every 20 ms until the server answers.
  for (int i = 0; i < 200 && !slow.readable(20ms); ++i) {
    REQUIRE(slow.send("a"));
    if (i == 3) {
      RawClient quick(server.port());
      const auto t0 = std::chrono::steady_clock::now();
      REQUIRE(quick.send(get("/quick")));
      const auto a = quick.read_answer();
      REQUIRE(a);
      CHECK(a->status == 200);
      CHECK(std::chrono::steady_clock::now() - t0 < 250ms);
      others_served = true;
    }
  }
  const auto waited = std::chrono::steady_clock::now() - first_byte;
  CHECK(others_served);
  const auto a = slow.read_answer();
  REQUIRE(a);
  CHECK(a->status == 408);
  CHECK(a->doc()["error"] == "request_timeout");
  CHECK(a->header("connection") == "close");
  CHECK(slow.wait_closed());
  CHECK(waited >= 250ms);
  CHECK(waited < 2s);

  {
    // A connection that sends nothing is closed without an answer.
    RawClient silent(server.port());
    CHECK(silent.wait_closed(3s));
    CHECK(silent.buffer().empty());
  }
  CHECK(server.stats().connections_timed_out >= 1);
}

TEST_CASE(
    "http server: at the cap an idle or slow connection makes room - 503 only when all are busy") {
  auto opts = options();
  opts.max_connections = 4;
  Server server(opts, echo);
  start(server);
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<RawClient>(server.port()));
    REQUIRE(held.back()->connected());
    REQUIRE(eventually([&] { return server.stats().connections_open == held.size(); }));
  }
  // 0 is half way through a request (slowloris), 1 and 2 say nothing, 3 is
  // an idle keep-alive connection after an answer.
  REQUIRE(held[0]->send("GET / HTTP/1.1\r\n"));
  REQUIRE(held[3]->send(get("/first")));
  REQUIRE(held[3]->read_answer());

  // Each newcomer takes a place: the idle keep-alive connection's first, then
  // those of the unfinished requests.
  std::vector<std::unique_ptr<RawClient>> newcomers;
  newcomers.push_back(std::make_unique<RawClient>(server.port()));
  CHECK(held[3]->wait_closed());
  for (int i = 0; i < 3; ++i) {
    newcomers.push_back(std::make_unique<RawClient>(server.port()));
  }
  for (const std::size_t i : {0u, 1u, 2u}) {
    CAPTURE(i);
    CHECK(held[i]->wait_closed());
  }
  // A request that arrives now is answered (the oldest silent newcomer makes room).
  RawClient asking(server.port());
  REQUIRE(asking.send(get("/new")));
  const auto a = asking.read_answer();
  REQUIRE(a);
  CHECK(a->status == 200);
  CHECK(newcomers[0]->wait_closed());
  CHECK(server.stats().connections_rejected == 5);
  CHECK(server.stats().connections_open == 4);
}

TEST_CASE("http server: connections over the cap get 503 when every one has a job running") {
  auto gate = std::make_shared<Gate>();
  auto opts = options();
  opts.max_connections = 2;
  opts.workers = 2;
  Server server(opts, with_jobs(gate));
  start(server);
  GateOpener opener{gate};
  RawClient one(server.port());
  RawClient two(server.port());
  REQUIRE(one.send(get("/slow")));
  REQUIRE(two.send(get("/slow")));
  REQUIRE(eventually([&] { return server.stats().jobs_running == 2; }));

  RawClient third(server.port());
  auto a = third.read_answer();
  REQUIRE(a);
  CHECK(a->status == 503);
  CHECK(a->doc()["error"] == "overloaded");
  CHECK(a->header("connection") == "close");
  CHECK(is_hex16(a->header("x-request-id")));
  CHECK(third.wait_closed());
  CHECK(server.stats().connections_rejected == 1);

  gate->open();
  for (auto* c : {&one, &two}) {
    a = c->read_answer();
    REQUIRE(a);
    CHECK(a->status == 200);
  }
  RawClient later(server.port());
  REQUIRE(later.send(get("/after")));
  a = later.read_answer();
  REQUIRE(a);
  CHECK(a->status == 200);
  CHECK(a->doc()["path"] == "/after");
}

TEST_CASE("http server: idle keep-alive connections are closed") {
  auto opts = options();
  opts.idle_timeout = 200ms;
  Server server(opts, echo);
  start(server);
  RawClient c(server.port());
  REQUIRE(c.send(get("/")));
  REQUIRE(c.read_answer());
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(c.wait_closed(3s));
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited >= 150ms);
  CHECK(waited < 2s);
  CHECK(c.buffer().empty());
  CHECK(eventually([&] { return server.stats().connections_open == 0; }));
}

TEST_CASE("http server: a pending write not drained in time closes the connection") {
  auto opts = options();
  opts.write_timeout = 300ms;
  const std::string big(16 << 20, 'x');
  Server server(opts, [&](const Request& r) -> Dispatch {
    if (r.path == "/big") {
      return {Response{200, "text/plain", {}, big}, {}};
    }
    return echo(r);
  });
  start(server);
  RawClient reader_that_never_reads(server.port(), "127.0.0.1", 4096);
  REQUIRE(reader_that_never_reads.send(get("/big")));
  REQUIRE(eventually([&] { return server.stats().connections_timed_out == 1; }));
  CHECK(eventually([&] { return server.stats().connections_open == 0; }));
  const auto a = ask(server.port(), get("/"));
  REQUIRE(a);
  CHECK(a->status == 200);
}

TEST_CASE("http server: a job runs on a worker while the loop keeps answering") {
  auto gate = std::make_shared<Gate>();
  Server server(options(), with_jobs(gate));
  start(server);
  GateOpener opener{gate};

  RawClient waiting(server.port());
  // The request after the job's waits for it: answers keep their order.
  REQUIRE(waiting.send(get("/slow", "X-Request-ID: job-1\r\n") + get("/after-slow")));
  REQUIRE(eventually([&] { return server.stats().jobs_running == 1; }));

  for (int i = 0; i < 3; ++i) {
    RawClient quick(server.port());
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(quick.send(get("/quick")));
    const auto a = quick.read_answer();
    REQUIRE(a);
    CHECK(a->status == 200);
    CHECK(std::chrono::steady_clock::now() - t0 < 500ms);
  }
  CHECK_FALSE(waiting.readable(0ms));
  REQUIRE(eventually([&] { return server.stats().oldest_job_age >= 10ms; }));
  const auto s = server.stats();
  CHECK(s.jobs_queued == 0);
  CHECK(s.loop_lag < 1s);

  gate->open();
  auto a = waiting.read_answer();
  REQUIRE(a);
  CHECK(a->status == 200);
  CHECK(a->doc()["slow"] == true);
  CHECK(a->doc()["request_id"] == "job-1");
  CHECK(a->header("x-request-id") == "job-1");
  CHECK(a->header("connection") == "keep-alive");
  a = waiting.read_answer();
  REQUIRE(a);
  CHECK(a->doc()["path"] == "/after-slow");
  // And the connection goes on.
  REQUIRE(waiting.send(get("/again")));
  a = waiting.read_answer();
  REQUIRE(a);
  CHECK(a->doc()["path"] == "/again");
  CHECK(eventually([&] { return server.stats().jobs_running == 0; }));
  CHECK(server.stats().oldest_job_age == 0ms);
}

TEST_CASE("http server: a client that leaves while its job runs is forgotten") {
  auto gate = std::make_shared<Gate>();
  Server server(options(), with_jobs(gate));
  start(server);
  GateOpener opener{gate};

  auto gone = std::make_unique<RawClient>(server.port());
  auto closed = std::make_unique<RawClient>(server.port());
  REQUIRE(gone->send(get("/slow")));
  REQUIRE(closed->send(get("/slow")));
  REQUIRE(eventually([&] { return server.stats().jobs_running == 2; }));
  gone->reset();
  closed->close();
  // The reset is seen at once, although nothing is read while the job runs.
  REQUIRE(eventually([&] { return server.stats().connections_open == 1; }));
  gate->open();
  CHECK(eventually([&] { return server.stats().jobs_running == 0; }));
  CHECK(eventually([&] { return server.stats().connections_open == 0; }));

  const auto a = ask(server.port(), get("/"));
  REQUIRE(a);
  CHECK(a->status == 200);
}

TEST_CASE("http server: a full job queue answers 503 busy") {
  auto gate = std::make_shared<Gate>();
  auto opts = options();
  opts.workers = 1;
  opts.max_queued_jobs = 1;
  Server server(opts, with_jobs(gate));
  start(server);
  GateOpener opener{gate};

  RawClient running(server.port());
  REQUIRE(running.send(get("/slow")));
  REQUIRE(eventually([&] { return server.stats().jobs_running == 1; }));
  RawClient queued(server.port());
  REQUIRE(queued.send(get("/slow")));
  REQUIRE(eventually([&] { return server.stats().jobs_queued == 1; }));

  RawClient refused(server.port());
  REQUIRE(refused.send(get("/slow")));
  auto a = refused.read_answer();
  REQUIRE(a);
  CHECK(a->status == 503);
  CHECK(a->doc()["error"] == "busy");
  CHECK(a->header("retry-after") == "1");
  CHECK(a->header("connection") == "keep-alive");
  CHECK(server.stats().jobs_rejected == 1);

  gate->open();
  for (auto* c : {&running, &queued}) {
    a = c->read_answer();
    REQUIRE(a);
    CHECK(a->status == 200);
  }
}

TEST_CASE("http server: a throwing dispatcher or job answers 500 without the exception text") {
  std::vector<std::string> lines;
  log::capture_for_test(&lines);
  {
    Server server(options(), [](const Request& r) -> Dispatch {
      if (r.path == "/throw") {
        throw std::runtime_error("secret-detail-1");
      }
      if (r.path == "/throw-other") {
        throw 42;
      }
      if (r.path == "/throw-job") {
        return {std::nullopt, []() -> Response { throw std::runtime_error("secret-detail-2"); }};
      }
      if (r.path == "/nothing") {
        return {};
      }
      return echo(r);
    });
    start(server);
    RawClient c(server.port());
    for (const auto* path : {"/throw", "/throw-other", "/throw-job", "/nothing"}) {
      CAPTURE(path);
      REQUIRE(c.send(get(path, "X-Request-ID: r-1\r\n")));
      const auto a = c.read_answer();
      REQUIRE(a);
      CHECK(a->status == 500);
      CHECK(a->doc()["error"] == "internal_error");
      CHECK(a->body.find("secret") == std::string::npos);
      CHECK(a->header("x-request-id") == "r-1");
    }
    // The connection is still good.
    REQUIRE(c.send(get("/fine")));
    const auto a = c.read_answer();
    REQUIRE(a);
    CHECK(a->status == 200);
    server.stop();
  }
  log::capture_for_test(nullptr);
  int failures = 0;
  for (const auto& l : lines) {
    failures += l.find("http_handler_failed") != std::string::npos ? 1 : 0;
  }
  CHECK(failures == 3);
}
