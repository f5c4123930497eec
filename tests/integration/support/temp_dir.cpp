#include "integration/support/temp_dir.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace sluice::it {

temp_dir::temp_dir(const std::string& prefix) {
    std::string pattern = "/tmp/" + prefix + "XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) {
        throw std::runtime_error("mkdtemp(" + pattern + "): " + std::strerror(errno));
    }
    path_ = buf.data();
}

temp_dir::~temp_dir() { remove(); }

temp_dir::temp_dir(temp_dir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }

temp_dir& temp_dir::operator=(temp_dir&& other) noexcept {
    if (this != &other) {
        remove();
        path_ = std::move(other.path_);
        other.path_.clear();
    }
    return *this;
}

void temp_dir::remove() noexcept {
    if (path_.empty()) return;
    const char* keep = std::getenv("SLUICE_IT_KEEP");
    if (keep != nullptr && std::string(keep) == "1") return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    path_.clear();
}

void temp_dir::chown_to(unsigned uid, unsigned gid) const {
    auto give = [&](const std::filesystem::path& p) {
        if (::lchown(p.c_str(), uid, gid) != 0) {
            throw std::runtime_error("chown " + p.string() + ": " + std::strerror(errno));
        }
    };
    give(path_);
    for (const auto& entry : std::filesystem::recursive_directory_iterator(path_)) give(entry.path());
}

void write_file(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string file_tail(const std::filesystem::path& path, std::size_t max_bytes) {
    std::string text = read_file(path);
    if (text.size() <= max_bytes) return text;
    std::string tail = text.substr(text.size() - max_bytes);
    auto nl = tail.find('\n');
    if (nl != std::string::npos && nl + 1 < tail.size()) tail.erase(0, nl + 1);
    return "[...]\n" + tail;
}

}  // namespace sluice::it
