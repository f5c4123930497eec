#pragma once
// The reader connections of the PostgreSQL store, leased one read at a time, and the store's
// health: what the last statement that went to PostgreSQL came to.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pg_connection.hpp"
#include "sluice/core/result.hpp"

namespace sluice::pg {

/// Whether PostgreSQL answered the store's last statement, as durable_store::healthy() reports
/// it: every outcome is recorded here and nowhere else (reads through their lease, writes and
/// pings by the store). A failure of any kind marks it unhealthy until a statement succeeds
/// again; the store writer pings an unhealthy store while idle. Owned by the PostgreSQL store;
/// any thread.
class store_health {
public:
    void record(bool ok) { healthy_.store(ok); }
    /// Records the outcome of r and hands it on.
    template <class R>
    R noted(R r) {
        record(r.ok());
        return r;
    }
    bool healthy() const { return healthy_.load(); }

private:
    std::atomic<bool> healthy_{false};
};

/// A fixed set of reader connections (postgres.pool_size) for the lookup pool: acquire() waits
/// for a free one and hands it out as a lease, which gives it back when it ends. Owned by the
/// PostgreSQL store; any thread.
class connection_pool {
public:
    class lease;
    /// Each connection runs on_connect whenever it (re)connects; health records every statement
    /// run through a lease (it outlives the pool).
    connection_pool(std::size_t n, const std::string& dsn, const std::vector<std::string>& on_connect,
                    store_health& health);
    /// Waits for a free connection.
    [[nodiscard]] lease acquire();

private:
    void give_back(std::unique_ptr<connection> c);

    store_health& health_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<connection>> free_;
};

/// One reader connection held for one read (one or a few statements) by the thread that
/// acquired it. Each statement's outcome goes to the store's health; the destructor returns the
/// connection to the pool. A connection that broke under a statement is dropped by the
/// connection itself and made again by the next statement run on it.
class connection_pool::lease {
public:
    lease(connection_pool& pool, std::unique_ptr<connection> conn) : pool_(&pool), conn_(std::move(conn)) {}
    lease(lease&&) noexcept = default;
    lease& operator=(lease&&) = delete;
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() {
        if (conn_) pool_->give_back(std::move(conn_));
    }

    result<result_ptr> exec(const std::string& sql) { return pool_->health_.noted(conn_->exec(sql)); }
    result<result_ptr> exec_params(const std::string& sql, const std::vector<const char*>& values) {
        return pool_->health_.noted(conn_->exec_params(sql, values));
    }
    result<result_ptr> exec_prepared(const std::string& name, const std::vector<const char*>& values) {
        return pool_->health_.noted(conn_->exec_prepared(name, values));
    }

private:
    connection_pool* pool_;
    std::unique_ptr<connection> conn_;
};

}  // namespace sluice::pg
