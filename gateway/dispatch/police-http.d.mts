export type PoliceFailureCode = 'TIMEOUT' | 'CONNECTION' | 'HTTP_CLIENT';

export interface PoliceAnswerRaw {
  status: number;
  body: string;
}

export function classifyPoliceError(err: unknown): { code: PoliceFailureCode; text: string };

export function createUndiciPoster(opts: { connectionsPerOrigin: number }): {
  post(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<PoliceAnswerRaw>;
  close(): Promise<void>;
};
