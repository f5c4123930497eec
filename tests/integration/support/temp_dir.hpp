#pragma once
// A private directory under /tmp for one fixture (a database cluster, a Redis dir, a daemon's
// config and log). Owned by the fixture that created it; removed with everything in it when
// that fixture is destroyed, unless SLUICE_IT_KEEP=1 is set in the environment (debugging).

#include <filesystem>
#include <string>

namespace sluice::it {

class temp_dir {
public:
    /// mkdtemp("/tmp/<prefix>XXXXXX"); throws std::runtime_error on failure.
    explicit temp_dir(const std::string& prefix = "sluice-it-");
    ~temp_dir();
    temp_dir(temp_dir&& other) noexcept;
    temp_dir& operator=(temp_dir&& other) noexcept;
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

    /// Gives the directory (recursively) to a user, e.g. the `postgres` system user.
    void chown_to(unsigned uid, unsigned gid) const;

private:
    void remove() noexcept;
    std::filesystem::path path_;
};

/// Writes `text` to `path` (truncating); throws on failure.
void write_file(const std::filesystem::path& path, const std::string& text);
/// The whole file, or "" when it cannot be read.
std::string read_file(const std::filesystem::path& path);
/// The last `max_bytes` of a file (starting at a line boundary when possible).
std::string file_tail(const std::filesystem::path& path, std::size_t max_bytes = 8192);

}  // namespace sluice::it
