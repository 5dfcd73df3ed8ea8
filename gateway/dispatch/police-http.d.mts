/** How a POST failed, as undici reported it. */
export type HttpFailureCode = 'TIMEOUT' | 'CONNECTION' | 'HTTP_CLIENT';

export interface PoliceAnswerRaw {
  status: number;
  body: string;
}

export function classifyPoliceError(err: unknown): { code: HttpFailureCode; text: string };

export function createUndiciPoster(opts: { connectionsPerOrigin: number }): {
  post(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<PoliceAnswerRaw>;
  close(): Promise<void>;
};
