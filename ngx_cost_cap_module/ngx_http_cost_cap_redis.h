
/*
 * ngx_cost_cap_module: the Redis client, in three layers.
 *
 *   ngx_http_cost_cap_ops.c     operations: the module's scripts, their
 *                               ids, the give-back of what a late or lost
 *                               reply leaves behind
 *   ngx_http_cost_cap_router.c  which connection: one node, the master a
 *                               Sentinel names, or a Cluster slot's master;
 *                               the queues of what waits for one
 *   ngx_http_cost_cap_redis.c   one connection: resolver, socket, TLS,
 *                               handshake, pipeline, stall timer, backoff
 *
 * NGINX owns every socket; hiredis only parses replies.
 */


#ifndef _NGX_HTTP_COST_CAP_REDIS_H_INCLUDED_
#define _NGX_HTTP_COST_CAP_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>


#define NGX_HTTP_COST_CAP_MODE_SINGLE    0
#define NGX_HTTP_COST_CAP_MODE_CLUSTER   1
#define NGX_HTTP_COST_CAP_MODE_SENTINEL  2

/* what the handler of an operation is told */
#define NGX_HTTP_COST_CAP_OP_REPLY       0     /* reply: the final one */
#define NGX_HTTP_COST_CAP_OP_TIMEOUT     1     /* the request's timeout:
                                                  a reply may follow */
#define NGX_HTTP_COST_CAP_OP_LOST        2     /* no reply will come */

/* an id: "costcap:{TAG}:op:" and 24 hex digits */
#define NGX_HTTP_COST_CAP_OP_ID_LEN      24


typedef struct ngx_http_cost_cap_conn_s  ngx_http_cost_cap_conn_t;
typedef struct ngx_http_cost_cap_op_s    ngx_http_cost_cap_op_t;

typedef void (*ngx_http_cost_cap_op_handler_pt)(ngx_http_cost_cap_op_t *op,
    redisReply *reply, ngx_uint_t event);

/* formats op->cmd for a connection (the periods follow its clock) */
typedef ngx_int_t (*ngx_http_cost_cap_op_build_pt)(
    ngx_http_cost_cap_op_t *op, ngx_http_cost_cap_conn_t *c);


/* a script of scripts/, and its SHA1 for EVALSHA */
typedef struct {
    ngx_str_t                        body;
    ngx_str_t                        sha;
    u_char                           hex[40];
} ngx_http_cost_cap_script_t;


/* an address of cost_cap_redis, or one a Cluster or Sentinel names */
typedef struct {
    ngx_str_t                        name;      /* "host:port" */
    ngx_str_t                        host;      /* TLS name, resolver */
    in_port_t                        port;
    struct sockaddr                 *sockaddr;  /* at configuration time */
    socklen_t                        socklen;
    unsigned                         resolve:1; /* a name, and a resolver */
} ngx_http_cost_cap_addr_t;


typedef enum {
    NGX_HTTP_COST_CAP_CONN_NODE = 0,            /* scripts */
    NGX_HTTP_COST_CAP_CONN_SENTINEL,            /* SENTINEL queries */
    NGX_HTTP_COST_CAP_CONN_SUBSCRIBER           /* +switch-master */
} ngx_http_cost_cap_conn_role_e;


typedef enum {
    NGX_HTTP_COST_CAP_CONN_DOWN = 0,
    NGX_HTTP_COST_CAP_CONN_RESOLVING,
    NGX_HTTP_COST_CAP_CONN_CONNECTING,
    NGX_HTTP_COST_CAP_CONN_SSL,
    NGX_HTTP_COST_CAP_CONN_UP
} ngx_http_cost_cap_conn_state_e;


struct ngx_http_cost_cap_conn_s {
    ngx_http_cost_cap_conn_state_e   state;
    ngx_http_cost_cap_conn_role_e    role;
    ngx_http_cost_cap_addr_t         addr;
    ngx_sockaddr_t                   sockaddr;  /* addr.sockaddr's room */

    ngx_peer_connection_t            peer;
    ngx_resolver_ctx_t              *resolving;
    redisReader                     *reader;

    u_char                          *out;
    size_t                           out_pos;
    size_t                           out_len;
    size_t                           out_size;

    ngx_queue_t                      ops;       /* awaiting replies, FIFO */
    ngx_uint_t                       nops;
    ngx_uint_t                       handshake; /* of them: handshake */
    uint64_t                         appended;  /* bytes, this connection */
    uint64_t                         written;

    ngx_event_t                      reconnect;
    ngx_event_t                      stall;     /* handshake, or replies
                                                   that stopped coming */
    ngx_msec_t                       backoff;
    ngx_msec_t                       connect_start;

    /* Redis' clock minus ours, in milliseconds: periods are Redis' */
    ngx_msec_int_t                   clock;

    /* errors are logged once per reconnect cycle: log is quieted after */
    ngx_log_t                        log;
    ngx_uint_t                       log_level;

    void                            *data;      /* the router's */
    ngx_http_cost_cap_conn_t        *next;      /* the router's list */

    unsigned                         erred:1;
    unsigned                         slow:1;
    unsigned                         tried:1;   /* connected before */
    unsigned                         forced:1;  /* shutdown timeout */
    unsigned                         owned:1;   /* addr's strings are ours */
};


/*
 * One command.  It lives on the heap and outlives the request that sent
 * it: a request that goes away only clears op->data.
 */
struct ngx_http_cost_cap_op_s {
    ngx_queue_t                      queue;     /* where it waits */
    ngx_event_t                      timer;     /* the request's timeout,
                                                   or the deadline while it
                                                   waits for a connection */
    ngx_http_cost_cap_op_handler_pt  handler;   /* NULL: handshake */
    ngx_http_cost_cap_op_build_pt    build;     /* NULL: cmd as it is */
    void                            *data;      /* the request's ctx, or
                                                   the operation's own */
    ngx_http_cost_cap_conn_t        *conn;      /* whose pipeline holds it */

    u_char                          *cmd;       /* formatted, kept for a
                                                   NOSCRIPT or a resend */
    size_t                           cmd_len;
    uint64_t                         end;       /* its last byte's offset
                                                   in conn */
    uint64_t                         start;     /* microseconds, sent */
    ngx_msec_t                       deadline;  /* resent until then */
    ngx_uint_t                       slot;      /* Cluster hash slot */
    ngx_uint_t                       redirects;

    ngx_http_cost_cap_script_t      *script;    /* NOSCRIPT: load this */
    const char                      *what;      /* handshake command */

    unsigned                         where:2;   /* which queue */
    unsigned                         request:1; /* a request waits: timer is
                                                   its timeout */
    unsigned                         fail_fast:1;   /* no waiting for a node
                                                       that is down */
    unsigned                         resend:1;  /* safe to send again after
                                                   a loss: it has an id */
    unsigned                         unknown:1; /* may have run, unanswered */
    unsigned                         noscript:1;
    unsigned                         requeued:1;    /* counted as a retry */
    unsigned                         internal:1;    /* the connection's */
    unsigned                         hs:1;      /* of the handshake */

    /* not zeroed for a new operation: written before they are read */
    u_char                           cmd_buf[512];
    uint64_t                         payload[320];  /* the module's */
};


#define NGX_HTTP_COST_CAP_OP_NOWHERE     0
#define NGX_HTTP_COST_CAP_OP_PIPELINE    1
#define NGX_HTTP_COST_CAP_OP_WAITING     2      /* for a connection */
#define NGX_HTTP_COST_CAP_OP_DELAYED     3      /* TRYAGAIN, LOADING... */


/* connection (ngx_http_cost_cap_redis.c) */
ngx_http_cost_cap_conn_t *ngx_http_cost_cap_conn_create(
    ngx_http_cost_cap_addr_t *addr, ngx_http_cost_cap_conn_role_e role,
    void *data);
void ngx_http_cost_cap_conn_destroy(ngx_http_cost_cap_conn_t *c);
ngx_int_t ngx_http_cost_cap_conn_connect(ngx_http_cost_cap_conn_t *c);
ngx_int_t ngx_http_cost_cap_conn_append(ngx_http_cost_cap_conn_t *c,
    ngx_http_cost_cap_op_t *op);
ngx_int_t ngx_http_cost_cap_conn_command(ngx_http_cost_cap_conn_t *c,
    const char *what, ngx_http_cost_cap_op_handler_pt handler, int argc,
    const char **argv, const size_t *argvlen);
void ngx_http_cost_cap_conn_fail(ngx_http_cost_cap_conn_t *c,
    const char *reason);
void ngx_http_cost_cap_conn_set_addr(ngx_http_cost_cap_conn_t *c,
    struct sockaddr *sa, socklen_t len);
ngx_int_t ngx_http_cost_cap_conn_format(ngx_http_cost_cap_op_t *op,
    int argc, const char **argv, const size_t *argvlen);
ngx_uint_t ngx_http_cost_cap_conn_usable(ngx_http_cost_cap_conn_t *c);

/* router (ngx_http_cost_cap_router.c) */
ngx_int_t ngx_http_cost_cap_router_init(ngx_cycle_t *cycle);
void ngx_http_cost_cap_router_exit(void);
ngx_int_t ngx_http_cost_cap_router_send(ngx_http_cost_cap_op_t *op);
void ngx_http_cost_cap_router_lost(ngx_http_cost_cap_op_t *op);
ngx_int_t ngx_http_cost_cap_router_retriable(ngx_http_cost_cap_op_t *op);
void ngx_http_cost_cap_router_retry(ngx_http_cost_cap_op_t *op);
void ngx_http_cost_cap_router_error(ngx_http_cost_cap_conn_t *c,
    ngx_http_cost_cap_op_t *op, redisReply *reply);
void ngx_http_cost_cap_router_ready(ngx_http_cost_cap_conn_t *c);
void ngx_http_cost_cap_router_down(ngx_http_cost_cap_conn_t *c);
void ngx_http_cost_cap_router_forced(void);
void ngx_http_cost_cap_router_unqueue(ngx_http_cost_cap_op_t *op);
void ngx_http_cost_cap_router_role(ngx_http_cost_cap_op_t *op,
    redisReply *reply, ngx_uint_t event);
void ngx_http_cost_cap_router_push(ngx_http_cost_cap_conn_t *c,
    redisReply *reply);
ngx_uint_t ngx_http_cost_cap_router_active(void);

/* operations (ngx_http_cost_cap_ops.c) */
ngx_http_cost_cap_op_t *ngx_http_cost_cap_op_alloc(void);
void ngx_http_cost_cap_op_free(ngx_http_cost_cap_op_t *op);
void ngx_http_cost_cap_op_finish(ngx_http_cost_cap_op_t *op,
    redisReply *reply, ngx_uint_t event);
void ngx_http_cost_cap_op_timeout(ngx_event_t *ev);
ngx_int_t ngx_http_cost_cap_ops_init_process(ngx_cycle_t *cycle);
void ngx_http_cost_cap_ops_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_cost_cap_ops_init_scripts(ngx_conf_t *cf);
ngx_int_t ngx_http_cost_cap_ops_handshake(ngx_http_cost_cap_conn_t *c);
ngx_int_t ngx_http_cost_cap_ops_load_script(ngx_http_cost_cap_conn_t *c,
    ngx_http_cost_cap_script_t *script);
void ngx_http_cost_cap_ops_clock(ngx_http_cost_cap_conn_t *c, int64_t sec,
    int64_t usec, uint64_t start);
void ngx_http_cost_cap_op_id(u_char *id);
int64_t ngx_http_cost_cap_redis_time(ngx_http_cost_cap_conn_t *c);

extern ngx_http_cost_cap_script_t  ngx_http_cost_cap_scripts[];
uint64_t ngx_http_cost_cap_now_us(void);


#endif /* _NGX_HTTP_COST_CAP_REDIS_H_INCLUDED_ */
