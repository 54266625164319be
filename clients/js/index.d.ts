// Type declarations of tickgate-client (hand-kept next to src/*.js).
// The messages are those of docs/protocol.md, sections 7 and 8.

// ---------- server to client ----------

export interface Limits { max_subscriptions: number; max_messages_per_minute: number; max_message_bytes: number; }
export interface Connected { type: 'connected'; client_id: string; user_id: string | null; role: string; heartbeat_interval_s: number; limits: Limits; }
export interface PriceUpdate {
  type: 'price_update'; symbol: string; price: number; bid: number; ask: number; volume: number;
  change: number; change_percent: number; timestamp: number; seq: number; snapshot?: true; delayed?: true;
}
export interface PriceBatch { type: 'price_batch'; updates: PriceUpdate[]; }
export interface SubscriptionConfirmed {
  type: 'subscription_confirmed'; symbols: string[]; epochs: Record<string, string>;
  delayed?: string[]; recovered?: Record<string, boolean>; id?: Id;
}
export type SubscriptionFailReason = 'invalid_symbol' | 'unknown_symbol' | 'limit_exceeded' | 'not_entitled';
export interface SubscriptionFailed { type: 'subscription_failed'; symbols: string[]; reason: SubscriptionFailReason; id?: Id; }
export interface UnsubscriptionConfirmed { type: 'unsubscription_confirmed'; symbols: string[]; id?: Id; }
export interface HeartbeatAck { type: 'heartbeat_ack'; server_time: number; id?: Id; }
export interface Authenticated { type: 'authenticated'; user_id: string; role: string; id?: Id; }
export interface TokenExpiring { type: 'token_expiring'; expires_at: number; }
export interface OptionsSet { type: 'options_set'; batch_ms: number; id?: Id; }
export interface History { type: 'history'; symbol: string; updates: PriceUpdate[]; id?: Id; }
export interface AnalysisResult {
  type: 'analysis_result'; symbol: string; window_s: number; open: number; high: number; low: number;
  close: number; vwap: number; volume: number; count: number; id?: Id;
}
export interface Position { symbol: string; quantity: number; avg_price: number; }
export interface PortfolioSubscribed { type: 'portfolio_subscribed'; id?: Id; }
export interface PortfolioUpdate {
  type: 'portfolio_update';
  event: { kind?: 'snapshot' | 'fill' | 'order_cancelled' | string; cash?: number; positions?: Position[]; order_id?: string; reason?: string; [k: string]: unknown };
}
export interface TradeAccepted { type: 'trade_accepted'; order_id: string; id?: Id; }
export type TradeRejectReason = 'insufficient_cash' | 'insufficient_position' | 'no_price' | 'too_many_open_orders' | 'order_store_unavailable' | 'unavailable';
export interface TradeRejected { type: 'trade_rejected'; reason: TradeRejectReason; id?: Id; }
export interface TradeFilled { type: 'trade_filled'; order_id: string; symbol: string; side: 'buy' | 'sell'; quantity: number; price: number; timestamp: number; }
export interface Broadcast { type: 'broadcast'; message: string; from: string | null; }
export interface BroadcastSent { type: 'broadcast_sent'; recipients: number; id?: Id; }
export interface Published { type: 'published'; count: number; id?: Id; }
export interface ReconnectAdvice { type: 'reconnect'; after_ms: number; }
export type ServerErrorCode = 'invalid_json' | 'invalid_message' | 'unknown_type' | 'rate_limited' | 'forbidden' | 'suspicious_content' | 'auth_failed' | 'internal_error';
export interface ErrorMessage { type: 'error'; code: ServerErrorCode; message: string; id?: Id; }

export type ServerMessage = Connected | PriceUpdate | PriceBatch | SubscriptionConfirmed | SubscriptionFailed |
  UnsubscriptionConfirmed | HeartbeatAck | Authenticated | TokenExpiring | OptionsSet | History | AnalysisResult |
  PortfolioSubscribed | PortfolioUpdate | TradeAccepted | TradeRejected | TradeFilled | Broadcast | BroadcastSent |
  Published | ReconnectAdvice | ErrorMessage;

export type Id = string | number;

// ---------- client to server ----------

export interface Tick { symbol: string; price: number; bid?: number; ask?: number; volume?: number; timestamp?: number; }
export interface Order { symbol: string; side: 'buy' | 'sell'; quantity: number; order_type: 'market' | 'limit'; limit_price?: number; }

// ---------- errors ----------

export type ErrorCode = ServerErrorCode | 'subscription_failed' | 'trade_rejected' | 'timeout' | 'disconnected' |
  'closed' | 'queue_full' | 'token_refresh_failed' | 'connect_failed';

export class TickgateError extends Error {
  code: ErrorCode;
  /** subscription_failed, trade_rejected: the server's reason */
  reason?: string;
  /** the request this answers (with its id) */
  request?: Record<string, unknown>;
  /** closed by the server: its close code and reason */
  closeCode?: number;
  closeReason?: string;
}

export class SubscriptionError extends TickgateError {
  code: 'subscription_failed';
  reason: SubscriptionFailReason;
  symbols: string[];
  failures: { reason: SubscriptionFailReason; symbols: string[] }[];
  confirmed: SubscriptionConfirmed | null;
}

// ---------- the client ----------

export type State = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'closed';

export interface BackoffOptions { initialMs?: number; maxMs?: number; factor?: number; }

export interface ClientOptions {
  token?: string;
  apiKey?: string;
  /** Called before each reconnect (and before the first connect when no token is given) and on token_expiring. */
  getToken?: () => string | Promise<string>;
  /** A WebSocket constructor (Node: the ws package). Default: globalThis.WebSocket. */
  WebSocket?: unknown;
  /** Credentials in headers (Authorization / X-API-Key) instead of the query string; needs a WebSocket that takes them (ws). */
  authHeader?: boolean;
  reconnect?: boolean;
  backoff?: BackoffOptions;
  /** [0, 1) source of the backoff's jitter (default Math.random). */
  random?: () => number;
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Application heartbeat every N ms; no ack in time drops the socket. 0 = off. */
  heartbeatMs?: number;
  /** Requests that may wait for a connection. */
  maxQueue?: number;
  /** Requests that may await a reply. */
  maxPending?: number;
  /** Subscribed on connect: symbols, or another client's `subscriptions` entries (resumed with recover). */
  subscriptions?: Iterable<string | [string, { seq: number | null; epoch: string | null }]>;
  /** For online/offline events; default the global window when there is one, null = none. */
  window?: { addEventListener: Function; removeEventListener: Function; navigator?: { onLine?: boolean } } | null;
}

export interface SymbolState { seq: number | null; epoch: string | null; delayed: boolean; active: boolean; }
export interface StateEvent { state: State; prev: State; delayMs?: number; at?: number; attempt?: number; }
export interface CloseEvent { code: number; reason: string; error?: string; }
export interface RecoveredEvent { recovered: string[]; missed: string[]; epochs: Record<string, string>; }
export interface GapEvent { symbol: string; from: number; to: number; }
export interface RequestOptions { timeoutMs?: number; }

export interface ClientEvents {
  update: PriceUpdate;
  state: StateEvent;
  connected: Connected;
  close: CloseEvent;
  recovered: RecoveredEvent;
  gap: GapEvent;
  error: TickgateError;
  message: ServerMessage;
  /** every message written to the socket (with its id) */
  sent: { type: string; id: Id; [k: string]: unknown };
  token_expiring: TokenExpiring;
  reconnect: ReconnectAdvice;
  trade_filled: TradeFilled;
  portfolio_update: PortfolioUpdate;
  broadcast: Broadcast;
}

export class TickgateClient {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  readonly state: State;
  readonly session: Connected | null;
  readonly subscriptions: Map<string, SymbolState>;
  readonly stats: { connects: number; duplicates: number; gaps: number; recovered: number; missed: number };

  on<K extends keyof ClientEvents>(event: K, fn: (v: ClientEvents[K]) => void): this;
  once<K extends keyof ClientEvents>(event: K, fn: (v: ClientEvents[K]) => void): this;
  off<K extends keyof ClientEvents>(event: K, fn: (v: ClientEvents[K]) => void): this;

  connect(): Promise<Connected>;
  close(code?: number, reason?: string): void;

  subscribe(symbols: string[], opts?: RequestOptions): Promise<SubscriptionConfirmed>;
  unsubscribe(symbols: string[], opts?: RequestOptions): Promise<UnsubscriptionConfirmed>;
  heartbeat(opts?: RequestOptions): Promise<HeartbeatAck>;
  authenticate(cred: { token: string } | { apiKey: string }, opts?: RequestOptions): Promise<Authenticated>;
  setOptions(o: { batchMs: number }, opts?: RequestOptions): Promise<OptionsSet>;
  getHistory(symbol: string, limit?: number, opts?: RequestOptions): Promise<History>;
  analysis(symbol: string, windowS?: number, opts?: RequestOptions): Promise<AnalysisResult>;
  portfolioSubscribe(opts?: RequestOptions): Promise<PortfolioSubscribed>;
  trade(order: Order, opts?: RequestOptions): Promise<TradeAccepted>;
  publish(updates: Tick[], opts?: RequestOptions): Promise<Published>;
  adminBroadcast(message: string, roles?: string[], opts?: RequestOptions): Promise<BroadcastSent>;
  /** Any message with a fresh id; resolves with the first reply carrying it. */
  request<T extends ServerMessage = ServerMessage>(msg: { type: string; [k: string]: unknown }, opts?: RequestOptions): Promise<T>;
}

export const BACKOFF_DEFAULTS: Readonly<Required<BackoffOptions>>;
export function backoffCeiling(attempt: number, opts?: BackoffOptions): number;
export function backoffDelay(attempt: number, opts?: BackoffOptions, random?: () => number): number;
