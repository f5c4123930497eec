#pragma once
// Latest-state reads from Redis done asynchronously on the HTTP io thread that asks: one Redis
// connection per io thread, the commands asked during one turn of its loop written together,
// the replies matched to their callbacks in order. No thread hand-off and no blocked thread per
// read, which is what a blocking connection pool costs on every request.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sluice/config/columns.hpp"
#include "sluice/config/config.hpp"
#include "sluice/core/record.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

class redis_io_reader {
public:
    using callback = std::function<void(result<std::optional<latest_entry>>)>;

    explicit redis_io_reader(const config& cfg);
    ~redis_io_reader();
    redis_io_reader(const redis_io_reader&) = delete;
    redis_io_reader& operator=(const redis_io_reader&) = delete;

    /// Reads the key's hash; done is called later on this thread, with the entry, none, or the
    /// error (a broken connection, no reply within redis.timeout_ms, a refused AUTH or SELECT).
    /// False, and done is not called, when the calling thread is not an HTTP io thread, or its
    /// connection failed less than a second ago, or too many reads wait on it: the caller reads
    /// another way.
    bool read(std::uint32_t set_index, const std::string& key, callback done);

private:
    const config& cfg_;
    std::vector<std::vector<latest_column>> columns_;  // per set
};

}  // namespace sluice
