#pragma once
// Latest-state reads from Redis done asynchronously on the HTTP io thread that asks: one Redis
// connection per io thread, the commands asked during one turn of its loop written together,
// the replies matched to their callbacks in order. No thread hand-off and no blocked thread per
// read, which is what a blocking connection pool costs on every request.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/config/columns.hpp"
#include "sluice/config/config.hpp"
#include "sluice/core/record.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

/// One Redis (RESP) reply, pointing into the input it was parsed from. Only the shapes the
/// reads get: status, error, integer, bulk string, nil, and arrays of those.
struct resp_reply {
    enum class kind { status, error, integer, bulk, nil, array } type = kind::nil;
    std::string_view text;                  // status, error, integer or bulk
    std::vector<std::string_view> elements;  // array (nil elements as empty strings)
};

/// Parses one reply at the start of `in`: the bytes it took, 0 when it is not complete yet, or
/// -1 when the input is not RESP the reads can get. No allocation once `out.elements` has grown.
long parse_resp_reply(std::string_view in, resp_reply& out);

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
