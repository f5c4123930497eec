#pragma once
// SHA-256 (OpenSSL's EVP), for dedup ids, hashed fields and API keys.

#include <string>
#include <string_view>

namespace sluice {

/// Lowercase hex SHA-256 of the bytes.
std::string sha256_hex(std::string_view bytes);

}  // namespace sluice
