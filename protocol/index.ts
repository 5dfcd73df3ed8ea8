export * from './schemas.ts';
export * from './topics.ts';
export * from './alert-id.ts';
export * from './police.ts';
export * from './json-payload.ts';
export * from './serial.ts';
export * from './cap.ts';
export * from './troubles.ts';
