/* handshake.c - RFC 6455 opening handshake helpers; see handshake.h. */
#include "ws/handshake.h"

#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static bool b64char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

bool ws_key_valid(const char *key, size_t len) {
    /* 16 bytes encode to 22 characters and "==". The last character's low
     * 4 bits must be zero for the encoding to be canonical. */
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!b64char(key[i]))
            return false;
    return strchr("AQgw", key[21]) != NULL;
}

void ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_LEN]) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) || !EVP_DigestUpdate(ctx, key, len) ||
        !EVP_DigestUpdate(ctx, GUID, sizeof(GUID) - 1) || !EVP_DigestFinal_ex(ctx, digest, &dlen)) {
        EVP_MD_CTX_free(ctx);
        out[0] = '\0'; /* only on allocation failure; the handshake then fails */
        return;
    }
    EVP_MD_CTX_free(ctx);
    EVP_EncodeBlock((unsigned char *)out, digest, (int)dlen);
}

bool http_header_has_token(const char *v, size_t len, const char *token) {
    size_t tl = strlen(token), i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
            return true;
    }
    return false;
}
