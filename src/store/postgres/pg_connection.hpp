#pragma once
// A libpq connection that knows how to reconnect. Internal to the PostgreSQL store.

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/result.hpp"

namespace sluice::pg {

/// Owns a PGresult.
struct result_deleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using result_ptr = std::unique_ptr<PGresult, result_deleter>;

/// One connection, used by one thread at a time. After CONNECTION_BAD the next ensure() makes a
/// new connection and runs the on-connect statements again (prepared statements die with it).
class connection {
public:
    connection(std::string dsn, std::vector<std::string> on_connect);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    /// Connects if not connected (or the connection broke).
    status ensure();
    /// Runs a statement without parameters; ok for PGRES_COMMAND_OK / TUPLES_OK.
    result<result_ptr> exec(const std::string& sql);
    /// Runs a statement with text parameters (nullptr = SQL NULL); binary_mask marks binary params.
    result<result_ptr> exec_params(const std::string& sql, const std::vector<const char*>& values,
                                   const std::vector<int>& lengths = {}, const std::vector<int>& formats = {});
    result<result_ptr> exec_prepared(const std::string& name, const std::vector<const char*>& values);
    /// COPY ... FROM STDIN with the whole text payload.
    status copy_in(const std::string& copy_sql, const std::string& data);
    /// Marks the connection for replacement (after an error whose state is unknown).
    void reset();
    bool connected() const;
    PGconn* raw() { return conn_; }
    /// The SQLSTATE of the last statement's failure ("" when it succeeded or its failure had none,
    /// e.g. a lost connection).
    const std::string& last_sqlstate() const { return sqlstate_; }

private:
    status check(PGresult* r, const std::string& what);
    std::string dsn_;
    std::vector<std::string> on_connect_;
    PGconn* conn_ = nullptr;
    std::string sqlstate_;
};

/// Whether a failure with this SQLSTATE can pass by itself (a lost connection, a deadlock, a
/// shutdown, a timeout) or fails the same way again (a data exception, a constraint, a missing
/// table or column, a refused grant). Anything unknown is taken as retryable.
error_kind kind_of_sqlstate(std::string_view sqlstate);

/// SQLSTATE unique_violation.
inline constexpr const char* unique_violation = "23505";

/// Quotes an identifier ("name").
std::string quote_ident(const std::string& name);

}  // namespace sluice::pg
