#ifndef FLOWD_CMICROHTTPD_SHIM_H
#define FLOWD_CMICROHTTPD_SHIM_H

// Static inline shims over libmicrohttpd for Swift, which cannot call the
// variadic MHD_start_daemon nor receive a va_list logger.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <microhttpd.h>

// The shutdown order (docs/architecture.md, "Shutdown") is built on libmicrohttpd 0.9.75:
// MHD_stop_daemon aborts the process while a connection is suspended, so HTTPServer.stop
// waits until none is; and the suspend/resume and streaming-reader rules it follows are
// those of 0.9.75 (docs/architecture.md, "Shutdown" and "Streaming responses"). Another
// version may behave otherwise at exactly these points: check them, and the drain tests,
// before moving this number.
#if !defined(MHD_VERSION) || MHD_VERSION != 0x00097500
#error "flowd's shutdown order is checked against libmicrohttpd 0.9.75 (MHD_VERSION 0x00097500): see docs/architecture.md, section Shutdown, before building with another version"
#endif

/// Receives one formatted libmicrohttpd error-log line.
typedef void (*flowd_mhd_log_fn)(void *cls, const char *message);

static inline void flowd_mhd_logger_trampoline(void *cls, const char *fmt, va_list ap) {
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    flowd_mhd_log_fn *fn = (flowd_mhd_log_fn *)cls;
    if (fn != NULL && *fn != NULL) (*fn)(NULL, line);
}

/// The URI is left exactly as the client sent it: the router splits the raw
/// path into segments and decodes each itself.
static inline size_t flowd_mhd_no_unescape(void *cls, struct MHD_Connection *c, char *uri) {
    (void)cls; (void)c;
    return strlen(uri);
}

/// Starts a daemon on an already-listening socket. Returns NULL on failure.
static inline struct MHD_Daemon *flowd_mhd_start(
    unsigned int flags,
    int listen_fd,
    MHD_AccessHandlerCallback handler, void *handler_cls,
    MHD_RequestCompletedCallback completed, void *completed_cls,
    unsigned int thread_pool_size,
    unsigned int connection_limit,
    unsigned int connection_timeout,
    size_t connection_memory_limit,
    flowd_mhd_log_fn *logger)
{
    return MHD_start_daemon(flags, 0, NULL, NULL, handler, handler_cls,
        MHD_OPTION_EXTERNAL_LOGGER, flowd_mhd_logger_trampoline, (void *)logger,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, connection_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory_limit,
        MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
        MHD_OPTION_UNESCAPE_CALLBACK, flowd_mhd_no_unescape, (void *)NULL,
        /* A pool only for two threads or more: the daemon warns about a size of 0 or 1.
           Otherwise the list ends here and the size after it is never read. */
        thread_pool_size > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, thread_pool_size,
        MHD_OPTION_END);
}

static inline uint16_t flowd_mhd_bound_port(struct MHD_Daemon *d) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    return info == NULL ? 0 : info->port;
}

/// Bytes of the request line and header block of the request on `c` (0 when unknown).
static inline size_t flowd_mhd_request_header_size(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    return info == NULL ? 0 : info->header_size;
}

#endif
