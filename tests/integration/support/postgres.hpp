#pragma once
// A throw-away PostgreSQL 15 server for integration tests, and a small libpq query helper.
//
// postgres_server runs initdb into a private temp dir (as the unprivileged `postgres` user when
// the tests run as root), starts `postgres` as a child on a free 127.0.0.1 port and creates the
// database `sluice`. It is owned by a test fixture and driven from the test thread; stop() and
// start() let a test take the database away from the daemon and bring it back on the same
// port and data. The destructor stops it; a crash of the test binary takes it down too
// (parent-death signal), so no server outlives the tests.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "integration/support/process.hpp"
#include "integration/support/temp_dir.hpp"

struct pg_conn;

namespace sluice::it {

class postgres_server {
public:
    /// initdb + start + CREATE DATABASE sluice. Throws std::runtime_error (with the server log)
    /// when any of it fails.
    postgres_server();
    ~postgres_server();
    postgres_server(const postgres_server&) = delete;
    postgres_server& operator=(const postgres_server&) = delete;

    /// Starts the server on the same data dir and port; returns when it accepts connections.
    void start(std::chrono::seconds timeout = std::chrono::seconds(60));
    /// Fast shutdown (SIGINT); SIGKILL to the whole process group after `grace`.
    void stop(std::chrono::seconds grace = std::chrono::seconds(30));
    /// Immediate, crash-like stop of every server process (SIGKILL to the group).
    void kill9();
    bool running();

    int port() const { return port_; }
    /// `host=127.0.0.1 port=P dbname=<db> user=postgres`
    std::string dsn(const std::string& db = "sluice") const;
    std::string log_tail(std::size_t max_bytes = 8192) const;
    const temp_dir& dir() const { return dir_; }

private:
    void wait_ready(std::chrono::seconds timeout);
    temp_dir dir_;
    int port_ = 0;
    std::optional<child_process> proc_;
};

/// Text of a NULL column in pg_rows.
inline constexpr const char* pg_null = "<NULL>";

/// Rows of text columns; NULL is `pg_null`.
using pg_rows = std::vector<std::vector<std::string>>;

/// One libpq connection (owned by a test, used from one thread). Throws std::runtime_error on
/// a connection or query error, with the server's message.
class pg_client {
public:
    explicit pg_client(const std::string& dsn);
    ~pg_client();
    pg_client(const pg_client&) = delete;
    pg_client& operator=(const pg_client&) = delete;

    /// PQexecParams with text parameters.
    pg_rows query(const std::string& sql, const std::vector<std::string>& params = {});
    /// The single value of a one-row, one-column query.
    std::string scalar(const std::string& sql, const std::vector<std::string>& params = {});

private:
    pg_conn* conn_ = nullptr;
};

/// Connects, runs one query, disconnects.
pg_rows pg_query(const std::string& dsn, const std::string& sql, const std::vector<std::string>& params = {});

/// count(*) style helper: the first column of the first row as a number; -1 when the query
/// fails (e.g. the table does not exist yet), so it can sit in a polling loop.
long long pg_count(const std::string& dsn, const std::string& sql, const std::vector<std::string>& params = {});

}  // namespace sluice::it
